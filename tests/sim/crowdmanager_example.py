# ruff: noqa: E501, F541, I001, W293
# CrowdManager's own Python example ("Example Python Implementation" in
# crowdmanager-ticketing-api.txt), verbatim but for two lines: the base URL
# and the token come from CROWDMANAGER_URL and CROWDMANAGER_TOKEN.
import os
import requests
import time
from datetime import datetime, timedelta

# Base URL of the API endpoint
base_url = os.environ["CROWDMANAGER_URL"] + "/tickets"  # Replace with your endpoint

# Authorization token (Basic Authentication)
headers = {
    "Authorization": "Basic " + os.environ["CROWDMANAGER_TOKEN"]  # Replace with your actual token
}

# Required date parameters (Unix timestamps in seconds)
# Example: Last 30 days
date_end = int(datetime.now().timestamp())
date_init = int((datetime.now() - timedelta(days=30)).timestamp())

# Pagination variables (0-based)
page = 0
all_items = []
delay_seconds = 1  # Delay between requests

try:
    while True:
        # Make a GET request to fetch the current page
        params = {
            "date_init": date_init,
            "date_end": date_end,
            "page": page,
            "count_elements": 100,  # Max 200
            "order": "DESC"
        }
        
        response = requests.get(base_url, params=params, headers=headers, timeout=10)
        response.raise_for_status()  # Raise an exception for HTTP errors
        
        # Parse JSON response
        data = response.json()
        
        # Check if we have items (API returns {count, page, items})
        if not data.get("items") or len(data["items"]) == 0:
            break  # Exit loop if no more results

        # Add current page items to the list
        all_items.extend(data["items"])
        print(f"Page {page} fetched successfully. Total items so far: {len(all_items)}/{data.get('count', 0)}")

        # Check if we've fetched all items
        if len(all_items) >= data.get("count", 0):
            break

        # Increment the page counter
        page += 1

        # Delay before the next request
        time.sleep(delay_seconds)

except requests.exceptions.HTTPError as e:
    if e.response.status_code == 400:
        print(f"Bad Request: {e.response.text}")
    elif e.response.status_code == 401:
        print(f"Unauthorized: Check your access token")
    else:
        print(f"HTTP Error {e.response.status_code}: {e}")
except requests.exceptions.RequestException as e:
    print(f"Error during API call: {e}")

print(f"Total items fetched: {len(all_items)}")
