import sys

from calc.ops import add


def run() -> None:
    a, b = (int(x) for x in sys.argv[1:3])
    print(add(a, b)
