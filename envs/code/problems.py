"""The problems of ``agentgym/CodeTests-v0``: 32 small function-writing tasks, written for agentgym.

Each problem gives a signature and a description; the first two tests are shown to the model
as examples and every test is run hidden. Arguments and expected values are plain JSON data
(lists, not tuples), so they travel into the sandbox and back unchanged. ``solution`` is the
reference policy's answer; tests/envs/code checks that it passes every test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PROBLEMS", "Problem"]


@dataclass(frozen=True)
class Problem:
    """One task: ``signature`` names the function, ``tests`` are ``(args, expected)`` pairs."""

    signature: str
    description: str
    solution: str
    tests: tuple[tuple[list[Any], Any], ...]

    @property
    def entry_point(self) -> str:
        return self.signature.removeprefix("def ").split("(")[0]

    @property
    def prompt(self) -> str:
        examples = "\n".join(
            f">>> {self.entry_point}({', '.join(map(repr, args))})\n{expected!r}" for args, expected in self.tests[:2]
        )
        return (
            f"Write a Python function:\n\n    {self.signature}\n\n{self.description}\n\nExamples:\n{examples}\n\n"
            "Reply with the complete function (and any imports it needs) in one ```python block; hidden unit "
            "tests will call it."
        )


PROBLEMS: tuple[Problem, ...] = (
    Problem(
        'def is_palindrome(s: str) -> bool',
        'Return True if s reads the same forwards and backwards, ignoring case and every character that '
        'is not a letter or digit.',
        '''\
def is_palindrome(s):
    kept = [c.lower() for c in s if c.isalnum()]
    return kept == kept[::-1]
''',
        (
            (['A man, a plan, a canal: Panama'], True),
            (['race a car'], False),
            ([''], True),
            (['ab'], False),
            (["No 'x' in Nixon"], True),
            (['12321'], True),
            (['1231'], False),
            (['.,!'], True),
            (['Was it a car or a cat I saw?'], True),
        ),
    ),
    Problem(
        'def fizzbuzz(n: int) -> list[str]',
        "Return the list of strings for 1..n: 'Fizz' for multiples of 3, 'Buzz' for multiples of 5, "
        "'FizzBuzz' for multiples of both, otherwise the number itself as a string.",
        '''\
def fizzbuzz(n):
    out = []
    for i in range(1, n + 1):
        word = ("Fizz" if i % 3 == 0 else "") + ("Buzz" if i % 5 == 0 else "")
        out.append(word or str(i))
    return out
''',
        (
            ([1], ['1']),
            ([3], ['1', '2', 'Fizz']),
            ([5], ['1', '2', 'Fizz', '4', 'Buzz']),
            ([15], ['1', '2', 'Fizz', '4', 'Buzz', 'Fizz', '7', '8', 'Fizz', 'Buzz', '11', 'Fizz', '13', '14', 'FizzBuzz']),
            ([0], []),
            ([16], ['1', '2', 'Fizz', '4', 'Buzz', 'Fizz', '7', '8', 'Fizz', 'Buzz', '11', 'Fizz', '13', '14', 'FizzBuzz', '16']),
            ([30], ['1', '2', 'Fizz', '4', 'Buzz', 'Fizz', '7', '8', 'Fizz', 'Buzz', '11', 'Fizz', '13', '14', 'FizzBuzz', '16', '17', 'Fizz', '19', 'Buzz', 'Fizz', '22', '23', 'Fizz', 'Buzz', '26', 'Fizz', '28', '29', 'FizzBuzz']),
        ),
    ),
    Problem(
        'def roman_to_int(s: str) -> int',
        'Convert a Roman numeral (I, V, X, L, C, D, M, with subtractive pairs such as IV, IX, XL, XC, CD, '
        'CM) to an integer.',
        '''\
def roman_to_int(s):
    values = {"I": 1, "V": 5, "X": 10, "L": 50, "C": 100, "D": 500, "M": 1000}
    total = 0
    for i, c in enumerate(s):
        v = values[c]
        total += -v if i + 1 < len(s) and values[s[i + 1]] > v else v
    return total
''',
        (
            (['III'], 3),
            (['LVIII'], 58),
            (['MCMXCIV'], 1994),
            (['IV'], 4),
            (['IX'], 9),
            (['XL'], 40),
            (['MMMCMXCIX'], 3999),
            (['CDXLIV'], 444),
            (['I'], 1),
        ),
    ),
    Problem(
        'def int_to_roman(n: int) -> str',
        'Convert an integer 1 <= n <= 3999 to a Roman numeral using subtractive notation (4 is IV, 900 is '
        'CM).',
        '''\
def int_to_roman(n):
    table = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
             (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]
    out = []
    for value, symbol in table:
        count, n = divmod(n, value)
        out.append(symbol * count)
    return "".join(out)
''',
        (
            ([3], 'III'),
            ([58], 'LVIII'),
            ([1994], 'MCMXCIV'),
            ([4], 'IV'),
            ([9], 'IX'),
            ([3999], 'MMMCMXCIX'),
            ([444], 'CDXLIV'),
            ([1], 'I'),
            ([2024], 'MMXXIV'),
        ),
    ),
    Problem(
        'def flatten(nested: list) -> list',
        'Flatten arbitrarily nested lists into one list of their non-list items, in order.',
        '''\
def flatten(nested):
    out = []
    for item in nested:
        if isinstance(item, list):
            out.extend(flatten(item))
        else:
            out.append(item)
    return out
''',
        (
            ([[1, [2, [3, [4]], 5]]], [1, 2, 3, 4, 5]),
            ([[]], []),
            ([[[[]]]], []),
            ([[1, 2, 3]], [1, 2, 3]),
            ([[[1], [2], [[3]], 'a']], [1, 2, 3, 'a']),
            ([[[[['deep']]], 0]], ['deep', 0]),
        ),
    ),
    Problem(
        'def run_length_encode(s: str) -> str',
        'Run-length encode s: each maximal run of a character c repeated k times becomes c followed by k '
        "(e.g. 'aaab' -> 'a3b1').",
        '''\
def run_length_encode(s):
    out, i = [], 0
    while i < len(s):
        j = i
        while j < len(s) and s[j] == s[i]:
            j += 1
        out.append(f"{s[i]}{j - i}")
        i = j
    return "".join(out)
''',
        (
            (['aaab'], 'a3b1'),
            ([''], ''),
            (['a'], 'a1'),
            (['abc'], 'a1b1c1'),
            (['aaaaaaaaaaaa'], 'a12'),
            (['aabbaa'], 'a2b2a2'),
            (['  xx'], ' 2x2'),
            (['zzzzzy'], 'z5y1'),
        ),
    ),
    Problem(
        'def balanced(s: str) -> bool',
        'Return True if the brackets (), [] and {} in s are balanced and properly nested; other '
        'characters are ignored.',
        '''\
def balanced(s):
    pairs = {")": "(", "]": "[", "}": "{"}
    stack = []
    for c in s:
        if c in "([{":
            stack.append(c)
        elif c in pairs:
            if not stack or stack.pop() != pairs[c]:
                return False
    return not stack
''',
        (
            (['([]{})'], True),
            (['([)]'], False),
            ([''], True),
            (['((('], False),
            (['a(b)c[d]{e}'], True),
            (['}{'], False),
            (['{[()()]}'], True),
            (['())'], False),
            (['x'], True),
        ),
    ),
    Problem(
        'def merge_intervals(intervals: list[list[int]]) -> list[list[int]]',
        'Merge overlapping closed intervals [start, end] (touching ones such as [1, 2] and [2, 3] '
        'overlap) and return them sorted by start.',
        '''\
def merge_intervals(intervals):
    merged = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged
''',
        (
            ([[[1, 3], [2, 6], [8, 10], [15, 18]]], [[1, 6], [8, 10], [15, 18]]),
            ([[[1, 4], [4, 5]]], [[1, 5]]),
            ([[]], []),
            ([[[5, 7]]], [[5, 7]]),
            ([[[6, 8], [1, 9], [2, 4]]], [[1, 9]]),
            ([[[1, 2], [3, 4]]], [[1, 2], [3, 4]]),
            ([[[-5, -1], [-2, 0], [10, 10]]], [[-5, 0], [10, 10]]),
        ),
    ),
    Problem(
        'def longest_common_prefix(words: list[str]) -> str',
        "Return the longest string that is a prefix of every word in words ('' for an empty list).",
        '''\
def longest_common_prefix(words):
    if not words:
        return ""
    prefix = min(words)
    last = max(words)
    i = 0
    while i < len(prefix) and prefix[i] == last[i]:
        i += 1
    return prefix[:i]
''',
        (
            ([['flower', 'flow', 'flight']], 'fl'),
            ([['dog', 'racecar', 'car']], ''),
            ([[]], ''),
            ([['alone']], 'alone'),
            ([['same', 'same']], 'same'),
            ([['', 'a']], ''),
            ([['interview', 'internet', 'interval']], 'inter'),
        ),
    ),
    Problem(
        'def word_counts(text: str) -> dict[str, int]',
        'Count the words of text, case-insensitively; a word is a maximal run of letters a-z (after '
        'lowercasing). Return a dict word -> count.',
        '''\
import re

def word_counts(text):
    counts = {}
    for word in re.findall(r"[a-z]+", text.lower()):
        counts[word] = counts.get(word, 0) + 1
    return counts
''',
        (
            (['The cat and the hat.'], {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}),
            ([''], {}),
            (['a a A b'], {'a': 3, 'b': 1}),
            (["Don't stop, don't!"], {'don': 2, 't': 2, 'stop': 1}),
            (['123 456'], {}),
            (['One\ntwo\tTHREE two'], {'one': 1, 'two': 2, 'three': 1}),
        ),
    ),
    Problem(
        'def rotate_clockwise(matrix: list[list[int]]) -> list[list[int]]',
        'Return the matrix rotated 90 degrees clockwise (the input may be rectangular; do not modify it).',
        '''\
def rotate_clockwise(matrix):
    return [list(row) for row in zip(*matrix[::-1])]
''',
        (
            ([[[1, 2], [3, 4]]], [[3, 1], [4, 2]]),
            ([[[1, 2, 3]]], [[1], [2], [3]]),
            ([[[1], [2], [3]]], [[3, 2, 1]]),
            ([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]], [[7, 4, 1], [8, 5, 2], [9, 6, 3]]),
            ([[[5]]], [[5]]),
            ([[[1, 2, 3, 4], [5, 6, 7, 8]]], [[5, 1], [6, 2], [7, 3], [8, 4]]),
        ),
    ),
    Problem(
        'def primes_up_to(n: int) -> list[int]',
        'Return all prime numbers p with p <= n, in increasing order.',
        '''\
def primes_up_to(n):
    if n < 2:
        return []
    sieve = [True] * (n + 1)
    sieve[0] = sieve[1] = False
    for p in range(2, int(n ** 0.5) + 1):
        if sieve[p]:
            sieve[p * p :: p] = [False] * len(range(p * p, n + 1, p))
    return [p for p in range(n + 1) if sieve[p]]
''',
        (
            ([10], [2, 3, 5, 7]),
            ([1], []),
            ([2], [2]),
            ([0], []),
            ([30], [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]),
            ([97], [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]),
            ([100], [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97]),
        ),
    ),
    Problem(
        'def binary_search(items: list[int], target: int) -> int',
        'items is sorted in increasing order with no duplicates. Return the index of target in items, or '
        '-1 if it is absent.',
        '''\
def binary_search(items, target):
    lo, hi = 0, len(items) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        if items[mid] == target:
            return mid
        if items[mid] < target:
            lo = mid + 1
        else:
            hi = mid - 1
    return -1
''',
        (
            ([[1, 3, 5, 7, 9], 7], 3),
            ([[1, 3, 5, 7, 9], 4], -1),
            ([[], 1], -1),
            ([[2], 2], 0),
            ([[2], 3], -1),
            ([[-10, -3, 0, 8, 20, 33], -10], 0),
            ([[-10, -3, 0, 8, 20, 33], 33], 5),
            ([[0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45, 48, 51, 54, 57, 60, 63, 66, 69, 72, 75, 78, 81, 84, 87, 90, 93, 96, 99, 102, 105, 108, 111, 114, 117, 120, 123, 126, 129, 132, 135, 138, 141, 144, 147, 150, 153, 156, 159, 162, 165, 168, 171, 174, 177, 180, 183, 186, 189, 192, 195, 198, 201, 204, 207, 210, 213, 216, 219, 222, 225, 228, 231, 234, 237, 240, 243, 246, 249, 252, 255, 258, 261, 264, 267, 270, 273, 276, 279, 282, 285, 288, 291, 294, 297], 150], 50),
        ),
    ),
    Problem(
        'def caesar(text: str, shift: int) -> str',
        'Shift every letter of text by shift places in the alphabet, wrapping around and keeping its '
        'case; other characters are unchanged. shift may be negative or larger than 26.',
        '''\
def caesar(text, shift):
    out = []
    for c in text:
        if c.isascii() and c.isalpha():
            base = ord("A") if c.isupper() else ord("a")
            out.append(chr(base + (ord(c) - base + shift) % 26))
        else:
            out.append(c)
    return "".join(out)
''',
        (
            (['abc', 1], 'bcd'),
            (['xyz', 3], 'abc'),
            (['Hello, World!', 13], 'Uryyb, Jbeyq!'),
            (['Hello, World!', -13], 'Uryyb, Jbeyq!'),
            (['', 5], ''),
            (['Zz', 52], 'Zz'),
            (['Python 3', -1], 'Oxsgnm 3'),
            (['abc', 27], 'bcd'),
        ),
    ),
    Problem(
        'def group_anagrams(words: list[str]) -> list[list[str]]',
        'Group the words that are anagrams of each other. Sort the words inside each group, then sort the '
        'groups (as lists) in increasing order.',
        '''\
def group_anagrams(words):
    groups = {}
    for word in words:
        groups.setdefault("".join(sorted(word)), []).append(word)
    return sorted(sorted(group) for group in groups.values())
''',
        (
            ([['eat', 'tea', 'tan', 'ate', 'nat', 'bat']], [['ate', 'eat', 'tea'], ['bat'], ['nat', 'tan']]),
            ([[]], []),
            ([['a']], [['a']]),
            ([['ab', 'ba', 'abc', 'cab', 'bca', 'x']], [['ab', 'ba'], ['abc', 'bca', 'cab'], ['x']]),
            ([['', '']], [['', '']]),
            ([['listen', 'silent', 'enlist', 'google']], [['enlist', 'listen', 'silent'], ['google']]),
        ),
    ),
    Problem(
        'def max_subarray_sum(nums: list[int]) -> int',
        'Return the largest sum of a non-empty contiguous subarray of nums (nums is non-empty).',
        '''\
def max_subarray_sum(nums):
    best = current = nums[0]
    for x in nums[1:]:
        current = max(x, current + x)
        best = max(best, current)
    return best
''',
        (
            ([[-2, 1, -3, 4, -1, 2, 1, -5, 4]], 6),
            ([[1]], 1),
            ([[-3, -1, -2]], -1),
            ([[5, 4, -1, 7, 8]], 23),
            ([[0, 0, 0]], 0),
            ([[2, -1, 2, -1, 2]], 4),
            ([[-1, 10, -20, 15]], 15),
        ),
    ),
    Problem(
        'def digital_root(n: int) -> int',
        'Repeatedly replace the non-negative integer n by the sum of its decimal digits until one digit '
        'is left, and return it.',
        '''\
def digital_root(n):
    while n >= 10:
        n = sum(int(d) for d in str(n))
    return n
''',
        (
            ([0], 0),
            ([9], 9),
            ([16], 7),
            ([942], 6),
            ([132189], 6),
            ([493193], 2),
            ([99999999999999999999], 9),
            ([1000000], 1),
        ),
    ),
    Problem(
        'def pascal_row(n: int) -> list[int]',
        "Return row n of Pascal's triangle (row 0 is [1], row 1 is [1, 1]).",
        '''\
def pascal_row(n):
    row = [1]
    for _ in range(n):
        row = [a + b for a, b in zip([0] + row, row + [0])]
    return row
''',
        (
            ([0], [1]),
            ([1], [1, 1]),
            ([2], [1, 2, 1]),
            ([5], [1, 5, 10, 10, 5, 1]),
            ([10], [1, 10, 45, 120, 210, 252, 210, 120, 45, 10, 1]),
            ([30], [1, 30, 435, 4060, 27405, 142506, 593775, 2035800, 5852925, 14307150, 30045015, 54627300, 86493225, 119759850, 145422675, 155117520, 145422675, 119759850, 86493225, 54627300, 30045015, 14307150, 5852925, 2035800, 593775, 142506, 27405, 4060, 435, 30, 1]),
        ),
    ),
    Problem(
        'def edit_distance(a: str, b: str) -> int',
        'Return the Levenshtein distance between a and b: the fewest single-character insertions, '
        'deletions and substitutions that turn a into b.',
        '''\
def edit_distance(a, b):
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]
''',
        (
            (['kitten', 'sitting'], 3),
            (['', ''], 0),
            (['', 'abc'], 3),
            (['abc', 'abc'], 0),
            (['flaw', 'lawn'], 2),
            (['intention', 'execution'], 5),
            (['a', 'b'], 1),
            (['abcdef', 'azced'], 3),
        ),
    ),
    Problem(
        'def lis_length(nums: list[int]) -> int',
        'Return the length of the longest strictly increasing subsequence of nums.',
        '''\
import bisect

def lis_length(nums):
    tails = []
    for x in nums:
        i = bisect.bisect_left(tails, x)
        if i == len(tails):
            tails.append(x)
        else:
            tails[i] = x
    return len(tails)
''',
        (
            ([[10, 9, 2, 5, 3, 7, 101, 18]], 4),
            ([[]], 0),
            ([[7, 7, 7]], 1),
            ([[0, 1, 0, 3, 2, 3]], 4),
            ([[5, 4, 3, 2, 1]], 1),
            ([[1, 2, 3, 4, 5, 6]], 6),
            ([[3, 10, 2, 1, 20, 4, 6, 7]], 4),
        ),
    ),
    Problem(
        'def matmul(a: list[list[int]], b: list[list[int]]) -> list[list[int]]',
        'Return the matrix product a x b (the number of columns of a equals the number of rows of b).',
        '''\
def matmul(a, b):
    return [[sum(x * y for x, y in zip(row, col)) for col in zip(*b)] for row in a]
''',
        (
            ([[[1, 2], [3, 4]], [[5, 6], [7, 8]]], [[19, 22], [43, 50]]),
            ([[[1, 0], [0, 1]], [[9, 8], [7, 6]]], [[9, 8], [7, 6]]),
            ([[[1, 2, 3]], [[4], [5], [6]]], [[32]]),
            ([[[4], [5], [6]], [[1, 2, 3]]], [[4, 8, 12], [5, 10, 15], [6, 12, 18]]),
            ([[[2]], [[-3]]], [[-6]]),
            ([[[1, -1], [2, 0]], [[0, 1, 2], [3, 4, 5]]], [[-3, -3, -3], [0, 2, 4]]),
        ),
    ),
    Problem(
        'def grid_paths(grid: list[list[int]]) -> int',
        'grid holds 0 (free) and 1 (blocked) cells. Count the paths from the top-left to the bottom-right '
        'cell that move only right or down through free cells (0 if either end is blocked).',
        '''\
def grid_paths(grid):
    rows, cols = len(grid), len(grid[0])
    ways = [[0] * cols for _ in range(rows)]
    for r in range(rows):
        for c in range(cols):
            if grid[r][c]:
                continue
            if r == 0 and c == 0:
                ways[r][c] = 1
            else:
                ways[r][c] = (ways[r - 1][c] if r else 0) + (ways[r][c - 1] if c else 0)
    return ways[-1][-1]
''',
        (
            ([[[0, 0, 0], [0, 1, 0], [0, 0, 0]]], 2),
            ([[[0]]], 1),
            ([[[1]]], 0),
            ([[[0, 1], [1, 0]]], 0),
            ([[[0, 0], [0, 0]]], 2),
            ([[[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]]], 252),
            ([[[0, 0, 0, 0], [1, 1, 0, 1], [0, 0, 0, 0]]], 1),
        ),
    ),
    Problem(
        'def to_base(n: int, base: int) -> str',
        'Write the integer n in the given base (2 <= base <= 36) with digits 0-9 then lowercase a-z, and '
        "a leading '-' for negative n.",
        '''\
def to_base(n, base):
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    if n == 0:
        return "0"
    sign, n = ("-", -n) if n < 0 else ("", n)
    out = []
    while n:
        n, r = divmod(n, base)
        out.append(digits[r])
    return sign + "".join(reversed(out))
''',
        (
            ([10, 2], '1010'),
            ([255, 16], 'ff'),
            ([0, 7], '0'),
            ([-255, 16], '-ff'),
            ([35, 36], 'z'),
            ([36, 36], '10'),
            ([123456789, 36], '21i3v9'),
            ([-1, 2], '-1'),
            ([8, 8], '10'),
        ),
    ),
    Problem(
        'def spiral_order(matrix: list[list[int]]) -> list[int]',
        'Return the elements of the matrix in clockwise spiral order, starting at the top-left corner.',
        '''\
def spiral_order(matrix):
    out = []
    rows = [list(r) for r in matrix]
    while rows:
        out.extend(rows.pop(0))
        rows = [list(r) for r in zip(*rows)][::-1]
    return out
''',
        (
            ([[[1, 2, 3], [4, 5, 6], [7, 8, 9]]], [1, 2, 3, 6, 9, 8, 7, 4, 5]),
            ([[[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]]], [1, 2, 3, 4, 8, 12, 11, 10, 9, 5, 6, 7]),
            ([[]], []),
            ([[[1]]], [1]),
            ([[[1], [2], [3]]], [1, 2, 3]),
            ([[[1, 2], [3, 4], [5, 6]]], [1, 2, 4, 6, 5, 3]),
        ),
    ),
    Problem(
        'def second_largest(nums: list[int]) -> int | None',
        'Return the second largest distinct value in nums, or None if there are fewer than two distinct '
        'values.',
        '''\
def second_largest(nums):
    distinct = sorted(set(nums))
    return distinct[-2] if len(distinct) >= 2 else None
''',
        (
            ([[3, 1, 4, 1, 5]], 4),
            ([[7, 7, 7]], None),
            ([[]], None),
            ([[1, 2]], 1),
            ([[-5, -1, -3]], -3),
            ([[10, 10, 9]], 9),
            ([[2]], None),
        ),
    ),
    Problem(
        'def summarize_ranges(nums: list[int]) -> list[str]',
        "nums is sorted with no duplicates. Return the ranges of consecutive numbers as strings: 'a-b' "
        "for a run from a to b with b > a, 'a' for a single number.",
        '''\
def summarize_ranges(nums):
    out, i = [], 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else f"{nums[i]}-{nums[j]}")
        i = j + 1
    return out
''',
        (
            ([[0, 1, 2, 4, 5, 7]], ['0-2', '4-5', '7']),
            ([[]], []),
            ([[3]], ['3']),
            ([[0, 2, 3, 4, 6, 8, 9]], ['0', '2-4', '6', '8-9']),
            ([[-3, -2, -1, 1]], ['-3--1', '1']),
            ([[1, 3, 5]], ['1', '3', '5']),
        ),
    ),
    Problem(
        'def median(nums: list[float]) -> float',
        'Return the median of the non-empty list nums as a float (the mean of the two middle values when '
        'the length is even).',
        '''\
def median(nums):
    s = sorted(nums)
    mid = len(s) // 2
    return float(s[mid]) if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
''',
        (
            ([[3, 1, 2]], 2.0),
            ([[4, 1, 3, 2]], 2.5),
            ([[5]], 5.0),
            ([[1.5, 2.5]], 2.0),
            ([[-1, -2, -3, -4]], -2.5),
            ([[7, 7, 7, 7, 1]], 7.0),
        ),
    ),
    Problem(
        'def minutes_between(start: str, end: str) -> int',
        "start and end are times 'HH:MM' on a 24-hour clock. Return the minutes from start forward to "
        'end, wrapping past midnight (0 when they are equal).',
        '''\
def minutes_between(start, end):
    def minutes(t):
        h, m = t.split(":")
        return int(h) * 60 + int(m)
    return (minutes(end) - minutes(start)) % (24 * 60)
''',
        (
            (['09:00', '17:30'], 510),
            (['23:15', '00:45'], 90),
            (['12:00', '12:00'], 0),
            (['00:00', '23:59'], 1439),
            (['18:20', '06:05'], 705),
            (['00:01', '00:00'], 1439),
        ),
    ),
    Problem(
        'def two_sum(nums: list[int], target: int) -> list[int]',
        'Exactly one pair of different positions i < j has nums[i] + nums[j] == target. Return [i, j].',
        '''\
def two_sum(nums, target):
    seen = {}
    for j, x in enumerate(nums):
        if target - x in seen:
            return [seen[target - x], j]
        seen[x] = j
    return []
''',
        (
            ([[2, 7, 11, 15], 9], [0, 1]),
            ([[3, 2, 4], 6], [1, 2]),
            ([[3, 3], 6], [0, 1]),
            ([[-1, -2, -3, -4, -5], -8], [2, 4]),
            ([[0, 4, 3, 0], 0], [0, 3]),
            ([[1, 5, 9, 13, 21], 34], [3, 4]),
        ),
    ),
    Problem(
        'def count_islands(grid: list[str]) -> int',
        "grid is a list of equal-length strings of '#' (land) and '.' (water). Count the islands: groups "
        'of land cells connected horizontally or vertically.',
        '''\
def count_islands(grid):
    seen = set()
    count = 0
    for r, row in enumerate(grid):
        for c, cell in enumerate(row):
            if cell != "#" or (r, c) in seen:
                continue
            count += 1
            stack = [(r, c)]
            seen.add((r, c))
            while stack:
                y, x = stack.pop()
                for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                    if 0 <= ny < len(grid) and 0 <= nx < len(grid[ny]) and grid[ny][nx] == "#" and (ny, nx) not in seen:
                        seen.add((ny, nx))
                        stack.append((ny, nx))
    return count
''',
        (
            ([['##..', '#..#', '..##']], 2),
            ([[]], 0),
            ([['....']], 0),
            ([['#']], 1),
            ([['#.#', '.#.', '#.#']], 5),
            ([['####', '#..#', '####']], 1),
        ),
    ),
    Problem(
        'def is_valid_ipv4(s: str) -> bool',
        'Return True if s is a dotted IPv4 address: four decimal numbers 0-255 separated by dots, with no '
        'signs, spaces or leading zeros (0 itself is fine).',
        '''\
def is_valid_ipv4(s):
    parts = s.split(".")
    if len(parts) != 4:
        return False
    for p in parts:
        if not p.isascii() or not p.isdigit() or (len(p) > 1 and p[0] == "0") or int(p) > 255:
            return False
    return True
''',
        (
            (['192.168.0.1'], True),
            (['255.255.255.255'], True),
            (['256.1.1.1'], False),
            (['1.2.3'], False),
            (['01.2.3.4'], False),
            (['0.0.0.0'], True),
            (['1.2.3.4.5'], False),
            (['a.b.c.d'], False),
            (['1.2.3.-4'], False),
            ([' 1.2.3.4'], False),
        ),
    ),
    Problem(
        'def rpn_eval(tokens: list[str]) -> int',
        'Evaluate a reverse Polish notation expression of integers and the operators +, -, *, /. Division '
        'truncates toward zero (so -7 / 2 is -3).',
        '''\
def rpn_eval(tokens):
    stack = []
    for t in tokens:
        if t in ("+", "-", "*", "/"):
            b, a = stack.pop(), stack.pop()
            if t == "+":
                stack.append(a + b)
            elif t == "-":
                stack.append(a - b)
            elif t == "*":
                stack.append(a * b)
            else:
                q = abs(a) // abs(b)
                stack.append(q if (a >= 0) == (b >= 0) else -q)
        else:
            stack.append(int(t))
    return stack[0]
''',
        (
            ([['2', '1', '+', '3', '*']], 9),
            ([['4', '13', '5', '/', '+']], 6),
            ([['7']], 7),
            ([['-7', '2', '/']], -3),
            ([['10', '6', '9', '3', '+', '-11', '*', '/', '*', '17', '+', '5', '+']], 22),
            ([['3', '4', '-']], -1),
        ),
    ),
)
