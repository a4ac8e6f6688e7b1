import json
import sys

expected = {"north": 166, "south": 275, "east": 300, "west": 5, "_total": 746}
try:
    with open("/app/report.json") as f:
        got = json.load(f)
except (OSError, ValueError) as exc:
    sys.exit(f"report.json unreadable: {exc}")
if got != expected:
    sys.exit(f"report.json is {got}, expected {expected}")
print("report ok")
