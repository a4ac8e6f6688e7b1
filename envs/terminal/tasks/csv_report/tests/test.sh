#!/bin/bash
# Checks /app/report.json; the reward is written last, after every other process of the
# sandbox user is gone (kill -1 spares only this script), so nothing the agent left can overwrite it.
python3 -I /tests/check_report.py
status=$?
kill -KILL -1 2>/dev/null
mkdir -p /logs/verifier
if [ "$status" -eq 0 ]; then echo 1 > /logs/verifier/reward.txt; else echo 0 > /logs/verifier/reward.txt; fi
