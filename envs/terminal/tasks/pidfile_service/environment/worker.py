import sys
import time

with open(sys.argv[1], "a", buffering=1) as log:
    while True:
        log.write(f"{time.time():.3f} tick\n")
        time.sleep(0.1)
