"""Task sources of ``agentgym/PythonTIR-v0``: our own templates, reasoning-gym's generators and
your own math dataset.

Built-in tasks are 17 templates (counting, number theory, combinatorics, probability, logic)
with seeded parameters: small enough to need no download, hard enough that computing beats
guessing. Each has a host-side gold answer (an integer or an exact fraction, matched exactly)
and a separate Python solution the reference policy runs in the sandbox, so the two check
each other. reasoning-gym tasks are generated on demand, ``Random(seed + index)`` per item,
and scored by the generator's own ``score_answer``. reasoning-gym costs ~1 s to import
(it pulls in sympy and matplotlib), so it is imported only when the env is built.
Dataset tasks (:func:`load_math_dataset`: MATH, AIME, DAPO-Math, GSM8K-style records) are
graded by :func:`math_match`, with math-verify when it is installed.
"""

from __future__ import annotations

import importlib.util
import itertools
import logging
import math
import random
import re
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from agentgym.grading import GRADE_TIMEOUT, bounded_call
from agentgym.parsers import BoxedParser

__all__ = [
    "BUILTIN_TEMPLATES", "DEFAULT_FAMILIES", "MathTask", "ReasoningGymSource", "builtin_task", "load_math_dataset",
    "literal_digits", "math_grade", "math_match", "numeric_match", "parse_number",
]

log = logging.getLogger("agentgym.envs.code")

# Math and logic families whose answers are short strings, generated in under 2 ms each.
DEFAULT_FAMILIES: tuple[str, ...] = (
    "basic_arithmetic", "chain_sum", "decimal_arithmetic", "fraction_simplification", "gcd", "lcm",
    "prime_factorization", "count_primes", "base_conversion", "bitwise_arithmetic", "complex_arithmetic",
    "simple_equations", "dice", "gsm_symbolic", "knights_knaves", "syllogism", "circuit_logic",
    "self_reference",
)


@dataclass(frozen=True)
class MathTask:
    """One problem. ``solution`` is Python that prints the answer (the reference policy's
    code); ``entry`` is the reasoning-gym item its scorer needs (None for built-in tasks)."""

    id: str
    question: str
    answer: str
    solution: str
    source: str
    entry: dict[str, Any] | None = field(default=None, compare=False)


# -- exact numeric answers ---------------------------------------------------------------------
_FRAC = re.compile(r"(-?)\\[dt]?frac\{(-?\d+)\}\{(-?\d+)\}")
_NOISE = re.compile(r"\\[,!;: ]|\\left|\\right|[\s,$]")
_BIG_EXPONENT = re.compile(r"[eE][+-]?_?0*\d{4}")  # 1e1000 and up: Fraction would build 10**exponent



def parse_number(text: str) -> Fraction | None:
    r"""An exact number from answer text: ``42``, ``-3.5``, ``1,234``, ``5/36``, ``\frac{5}{36}``,
    ``$\dfrac{5}{36}$``, ``\text{12}``; None when the text is not one number, or one written with
    an exponent of 1000 or more (``1e99999999`` would take Fraction minutes and gigabytes)."""
    s = _NOISE.sub("", text)
    if s.startswith("\\text{") and s.endswith("}"):
        s = s[6:-1]
    if m := _FRAC.fullmatch(s):
        s = f"{m.group(1)}{m.group(2)}/{m.group(3)}"
    if not s or len(s) > 1000 or _BIG_EXPONENT.search(s):
        return None
    try:
        return Fraction(s)
    except (ValueError, ZeroDivisionError):
        return None


def numeric_match(answer: str, gold: str) -> float:
    """1.0 when ``answer`` is exactly the number ``gold`` (``0.5`` matches ``1/2``), else 0.0."""
    value = parse_number(answer)
    return float(value is not None and value == Fraction(gold))


MATH_VERIFY_HINT = "pip install 'agentgym-rl[math]'"
MAX_ANSWER_CHARS = 1000  # longer answers are wrong without being parsed
MAX_DIGITS = 1e6  # an answer that is one number of more digits than this is not evaluated
_SPACE = re.compile(r"\s+|\$|\\[,!;: ]|\\left|\\right|\\displaystyle")


def math_match(answer: str, gold: str, *, timeout: float = GRADE_TIMEOUT) -> float:
    """:func:`math_grade`'s score alone."""
    return math_grade(answer, gold, timeout=timeout)[0]


def math_grade(answer: str, gold: str, *, timeout: float = GRADE_TIMEOUT) -> tuple[float, str | None]:
    r"""``(1.0, None)`` when ``answer`` and ``gold`` are the same mathematical answer, else
    ``(0.0, why)`` where ``why`` is None for a plain wrong answer, or says why the answer was
    not graded (too long, an astronomically large number, or grading ran out of ``timeout``).

    With math-verify (the ``math`` extra): LaTeX and plain expressions are parsed and compared
    symbolically (``\frac{1}{2}`` = ``0.5`` = ``1/2``, ``x+1`` = ``1+x``, intervals, sets in any
    order, units and ``\text{}`` dropped), in a grading worker process with a hard time bound
    from any thread (:func:`agentgym.grading.bounded_call`): sympy can run for minutes on a
    short answer like ``9^{9^{9^{9}}}``, holding the GIL. An answer that is a single power tower
    or factorial of literals with more than a million digits is refused before sympy sees it
    when the gold is an ordinary number (they cannot be equal). Without math-verify: the same
    number (:func:`parse_number`) or the same text once spaces, ``$`` and ``\left``/``\right``
    are removed, and a warning says so.
    """
    if len(answer) > MAX_ANSWER_CHARS:
        return 0.0, f"the answer is over {MAX_ANSWER_CHARS} characters and was not graded"
    if importlib.util.find_spec("math_verify") is None:
        warnings.warn(f"math-verify is not installed ({MATH_VERIFY_HINT}): math answers are graded by exact "
                      "match, so equivalent forms such as 1/2 and 0.5 in LaTeX may be marked wrong", stacklevel=2)
        number = parse_number(answer)
        if number is not None and number == parse_number(gold):
            return 1.0, None
        return float(_SPACE.sub("", answer).rstrip(".") == _SPACE.sub("", gold).rstrip(".")), None
    digits = literal_digits(answer)
    if digits is not None and digits > MAX_DIGITS:
        gold_digits = literal_digits(gold)
        if gold_digits is not None and gold_digits > MAX_DIGITS and _SPACE.sub("", answer) == _SPACE.sub("", gold):
            return 1.0, None  # the same huge number, written the same way: nothing to evaluate
        if gold_digits is not None and gold_digits <= MAX_DIGITS:
            size = f"about {digits:.3g}" if math.isfinite(digits) else "more than 1e300"
            return 0.0, f"the answer is a number of {size} digits; it was not evaluated (the gold answer is far smaller)"
    graded = bounded_call("agentgym.envs.code.tasks:math_verify_match", [answer, gold], timeout=timeout,
                          warm=("agentgym.envs.code.tasks:warm_math_verify", []))
    if graded.error is not None:
        return 0.0, f"the answer could not be graded: {graded.error}"
    return float(bool(graded.value)), None


def warm_math_verify() -> None:
    """Import math-verify and parse once (a grading worker's warm-up, not timed)."""
    from math_verify import parse, verify

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # its "timeout is disabled": the worker is the bound

    verify(parse("\\boxed{1}", parsing_timeout=None), parse("\\boxed{1}", parsing_timeout=None), timeout_seconds=None)


def math_verify_match(answer: str, gold: str) -> bool:
    """math-verify's verdict, unbounded: only ever called in a grading worker."""
    from math_verify import parse, verify

    expected = parse(f"\\boxed{{{gold}}}", parsing_timeout=None)
    got = parse(f"\\boxed{{{answer}}}", parsing_timeout=None)
    return bool(expected) and bool(got) and bool(verify(expected, got, timeout_seconds=None))


_TOKEN = re.compile(r"\s*(\d+|\*\*|[()^{}!])")


def literal_digits(text: str) -> float | None:
    r"""The number of decimal digits of ``text`` when it is one expression of integer literals,
    powers (``^``, ``**``, braces and parentheses for grouping) and factorials, such as
    ``9^{9^{9^{9}}}`` or ``(10^{10})!``, estimated in logarithms without evaluating it
    (``inf`` past floats); None for anything else. Cheap, so a grader can refuse an answer that
    would take sympy minutes to expand."""
    text = text.strip().strip("$").replace("\\left", "").replace("\\right", "")
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if text[pos:].strip():
                return None
            break
        tokens.append(m.group(1))
        pos = m.end()
    if not tokens:
        return None
    try:
        value, rest = _power(tokens)
    except (IndexError, ValueError):
        return None
    return None if rest else value


def _log10_factorial(log10_n: float) -> float:
    if log10_n > 300:
        return math.inf
    n = 10 ** log10_n
    return math.lgamma(n + 1) / math.log(10)


def _atom(tokens: list[str]) -> tuple[float, list[str]]:
    """log10 of an atom (a literal or a group), then any factorials."""
    head, rest = tokens[0], tokens[1:]
    if head.isdigit():
        value = math.log10(int(head)) if int(head) > 0 else -math.inf
    elif head in "({":
        value, rest = _power(rest)
        if not rest or rest[0] != {"(": ")", "{": "}"}[head]:
            raise ValueError("unbalanced group")
        rest = rest[1:]
    else:
        raise ValueError(head)
    while rest and rest[0] == "!":
        value, rest = _log10_factorial(value), rest[1:]
    return value, rest


def _power(tokens: list[str]) -> tuple[float, list[str]]:
    """log10 of ``atom (^ power)?``, right-associative."""
    base, rest = _atom(tokens)
    if rest and rest[0] in ("^", "**"):
        exponent, rest = _power(rest[1:])
        if exponent > 300:
            return (math.inf if base > 0 else base), rest
        return base * 10 ** exponent, rest
    return base, rest


def load_math_dataset(source: str | Path | Iterable[Mapping[str, Any]], *, limit: int | None = None) -> list[MathTask]:
    r"""Math problems from a file (.jsonl, .jsonl.gz, .json, .parquet) or records: the question is
    ``problem`` or ``question``; the gold answer is ``answer`` (its last ``oxed{}`` if it has
    one), else the last ``oxed{}`` of ``solution``. Ids are ``data/<index>`` (or ``data/<id>``
    from an ``id``/``unique_id`` field)."""
    from .datasets import read_records

    records = read_records(Path(source)) if isinstance(source, (str, Path)) else list(source)
    tasks = []
    boxed = BoxedParser(max_chars=1 << 20, ignore_think=False)
    for index, record in enumerate(records[:limit] if limit is not None else records):
        question = record.get("problem") or record.get("question")
        raw = record.get("answer")
        answer = str(raw) if raw is not None and str(raw).strip() else None
        if answer is not None and (parsed := boxed.parse(answer)).kind == "answer":
            answer = parsed.answer
        if answer is None and record.get("solution"):
            parsed = boxed.parse(str(record["solution"]))
            answer = parsed.answer if parsed.kind == "answer" else None
        if not question or not answer:
            raise ValueError(f"record {index} needs a problem/question and an answer (or a solution with \\boxed{{}})")
        key = record.get("id", record.get("unique_id", index))
        solution = f"answer = {answer.strip()!r}\nprint(answer)"
        tasks.append(MathTask(f"data/{key}", str(question), answer.strip(), solution, "data"))
    if not tasks:
        raise ValueError("the dataset holds no problems")
    return tasks


def _fmt(value: int | Fraction) -> str:
    return str(value) if not isinstance(value, Fraction) or value.denominator != 1 else str(value.numerator)


# -- built-in templates: (rng) -> (question, gold, solution code) --------------------------------
Template = Callable[[random.Random], tuple[str, int | Fraction, str]]


def _multiples(rng: random.Random) -> tuple[str, int, str]:
    n, a, b = rng.randrange(500, 100_000), rng.randrange(2, 12), rng.randrange(2, 12)
    while b == a:
        b = rng.randrange(2, 12)

    def below(k: int) -> int:  # sum of multiples of k below n, in closed form
        m = (n - 1) // k
        return k * m * (m + 1) // 2

    gold = below(a) + below(b) - below(a * b // math.gcd(a, b))
    question = f"What is the sum of all positive integers below {n} that are multiples of {a} or {b}?"
    return question, gold, f"print(sum(k for k in range(1, {n}) if k % {a} == 0 or k % {b} == 0))"


def _prime_count(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randrange(1_000, 60_000)
    sieve = bytearray([1]) * n
    sieve[:2] = b"\x00\x00"
    for p in range(2, math.isqrt(n - 1) + 1):
        if sieve[p]:
            sieve[p * p :: p] = bytearray(len(range(p * p, n, p)))
    code = (f"n = {n}\nis_prime = [True] * n\nis_prime[0] = is_prime[1] = False\nfor p in range(2, n):\n"
            "    if is_prime[p] and p * p < n:\n        for q in range(p * p, n, p):\n            is_prime[q] = False\n"
            "print(sum(is_prime))")
    return f"How many prime numbers are less than {n}?", sum(sieve), code


def _fibonacci_mod(rng: random.Random) -> tuple[str, int, str]:
    n, m = rng.randrange(50, 5_000), rng.randrange(97, 100_000)
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    question = f"With F(1) = F(2) = 1 and F(k) = F(k-1) + F(k-2), what is the remainder of F({n}) divided by {m}?"
    code = f"a, b = 1, 1\nfor _ in range({n} - 2):\n    a, b = b, (a + b) % {m}\nprint(b % {m})"
    return question, a % m, code


def _lattice_paths(rng: random.Random) -> tuple[str, int, str]:
    w, h = rng.randrange(3, 30), rng.randrange(3, 30)
    question = (f"A grid is {w} blocks wide and {h} blocks tall. How many shortest paths along the grid lines "
                "lead from its bottom-left corner to its top-right corner?")
    code = (f"row = [1] * ({w} + 1)\nfor _ in range({h}):\n    for i in range(1, {w} + 1):\n"
            f"        row[i] += row[i - 1]\nprint(row[-1])")
    return question, math.comb(w + h, w), code


def _digit_sum_power(rng: random.Random) -> tuple[str, int, str]:
    k, e = rng.randrange(2, 20), rng.randrange(20, 400)
    gold = sum(int(d) for d in str(k**e))
    return f"What is the sum of the decimal digits of {k}^{e}?", gold, f"print(sum(map(int, str({k} ** {e}))))"


def _divisor_count(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randrange(2, 10) ** rng.randrange(1, 4) * rng.randrange(100, 100_000)
    count, m, p = 1, n, 2
    while p * p <= m:
        e = 0
        while m % p == 0:
            m //= p
            e += 1
        count *= e + 1
        p += 1
    count *= 2 if m > 1 else 1
    code = f"import math\nn = {n}\nprint(sum(1 if d * d == n else 2 for d in range(1, math.isqrt(n) + 1) if n % d == 0))"
    return f"How many positive divisors does {n} have?", count, code


def _power_mod(rng: random.Random) -> tuple[str, int, str]:
    a, b, m = rng.randrange(2, 10_000), rng.randrange(10**6, 10**12), rng.randrange(1_000, 10**9)
    code = f"result, base, e = 1, {a} % {m}, {b}\nwhile e:\n    if e & 1:\n        result = result * base % {m}\n" \
           f"    base = base * base % {m}\n    e >>= 1\nprint(result)"
    return f"What is the remainder when {a}^{b} is divided by {m}?", pow(a, b, m), code


def _coin_change(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randrange(20, 1_000)
    coins = (1, 5, 10, 25)
    ways = [1] + [0] * n
    for c in coins:
        for v in range(c, n + 1):
            ways[v] += ways[v - c]
    question = f"In how many different ways can {n} cents be paid with coins of 1, 5, 10 and 25 cents?"
    code = (f"n = {n}\ncount = 0\nfor q in range(n // 25 + 1):\n    for d in range((n - 25 * q) // 10 + 1):\n"
            f"        count += (n - 25 * q - 10 * d) // 5 + 1\nprint(count)")
    return question, ways[n], code


def _trailing_zeros(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randrange(30, 3_000)
    gold, p = 0, 5
    while p <= n:
        gold += n // p
        p *= 5
    code = f"import math\nf, zeros = math.factorial({n}), 0\nwhile f % 10 == 0:\n    f //= 10\n    zeros += 1\nprint(zeros)"
    return f"How many zeros does {n}! end with?", gold, code


def _crt(rng: random.Random) -> tuple[str, int, str]:
    moduli = rng.sample([3, 4, 5, 7, 11, 13, 17, 19, 23], 3)  # pairwise coprime
    residues = [rng.randrange(m) for m in moduli]
    product = math.prod(moduli)
    gold = sum(r * (product // m) * pow(product // m, -1, m) for r, m in zip(residues, moduli, strict=True)) % product
    gold = gold or product
    conditions = ", ".join(f"x mod {m} = {r}" for r, m in zip(residues, moduli, strict=True))
    checks = " and ".join(f"x % {m} == {r}" for r, m in zip(residues, moduli, strict=True))
    code = f"x = 1\nwhile not ({checks}):\n    x += 1\nprint(x)"
    return f"What is the smallest positive integer x with {conditions}?", gold, code


def _dice_sum(rng: random.Random) -> tuple[str, Fraction, str]:
    k = rng.randrange(2, 6)
    s = rng.randrange(k, 6 * k + 1)
    counts = {0: 1}
    for _ in range(k):
        nxt: dict[int, int] = {}
        for total, c in counts.items():
            for face in range(1, 7):
                nxt[total + face] = nxt.get(total + face, 0) + c
        counts = nxt
    gold = Fraction(counts.get(s, 0), 6**k)
    question = (f"{k} fair six-sided dice are rolled. What is the probability that the faces sum to {s}? "
                "Give the answer as a reduced fraction.")
    code = (f"from fractions import Fraction\nfrom itertools import product\nrolls = list(product(range(1, 7), "
            f"repeat={k}))\nprint(Fraction(sum(sum(r) == {s} for r in rolls), len(rolls)))")
    return question, gold, code


def _collatz(rng: random.Random) -> tuple[str, int, str]:
    n, steps = rng.randrange(3, 100_000), 0
    m = n
    while m != 1:
        m = 3 * m + 1 if m % 2 else m // 2
        steps += 1
    question = (f"The Collatz map sends n to n/2 when n is even and to 3n+1 when n is odd. "
                f"How many steps does it take to reach 1 from {n}?")
    code = f"n, steps = {n}, 0\nwhile n != 1:\n    n = n // 2 if n % 2 == 0 else 3 * n + 1\n    steps += 1\nprint(steps)"
    return question, steps, code


def _increasing_digits(rng: random.Random) -> tuple[str, int, str]:
    d = rng.randrange(2, 6)
    question = f"How many {d}-digit positive integers have strictly increasing digits from left to right?"
    code = (f"print(sum(all(a < b for a, b in zip(str(k), str(k)[1:])) "
            f"for k in range(10 ** ({d} - 1), 10 ** {d})))")
    return question, math.comb(9, d), code


_WORDS = ("BANANA", "MISSISSIPPI", "BOOKKEEPER", "STATISTICS", "ABRACADABRA", "COMMITTEE", "PEPPER",
          "SUCCESSES", "ASSESSMENT", "PARALLEL", "TENNESSEE", "BALLOON")


def _word_arrangements(rng: random.Random) -> tuple[str, int, str]:
    word = rng.choice(_WORDS)
    gold = math.factorial(len(word))
    for letter in set(word):
        gold //= math.factorial(word.count(letter))
    code = (f"from collections import Counter\nfrom math import factorial, prod\nword = {word!r}\n"
            "print(factorial(len(word)) // prod(factorial(c) for c in Counter(word).values()))")
    return f"How many distinct arrangements of the letters of the word {word} are there?", gold, code


def _square_sum_gap(rng: random.Random) -> tuple[str, int, str]:
    n = rng.randrange(10, 5_000)
    gold = (n * (n + 1) // 2) ** 2 - n * (n + 1) * (2 * n + 1) // 6
    question = (f"What is the difference between the square of the sum and the sum of the squares of the "
                f"first {n} positive integers?")
    code = f"print(sum(range(1, {n} + 1)) ** 2 - sum(k * k for k in range(1, {n} + 1)))"
    return question, gold, code


def _larger_of_two_rolls(rng: random.Random) -> tuple[str, Fraction, str]:
    k = rng.randrange(4, 31)
    gold = Fraction(sum(m * (2 * m - 1) for m in range(1, k + 1)), k * k)
    question = (f"A fair die with faces 1 to {k} is rolled twice. What is the expected value of the larger "
                "of the two results? Give the answer as a reduced fraction.")
    code = (f"from fractions import Fraction\nk = {k}\n"
            "print(Fraction(sum(max(a, b) for a in range(1, k + 1) for b in range(1, k + 1)), k * k))")
    return question, gold, code


def _satisfying_assignments(rng: random.Random) -> tuple[str, int, str]:
    n, m = rng.randrange(4, 9), rng.randrange(3, 9)
    clauses = [[(v, rng.random() < 0.5) for v in rng.sample(range(1, n + 1), 3)] for _ in range(m)]

    def text(lit: tuple[int, bool]) -> str:
        return f"not p{lit[0]}" if lit[1] else f"p{lit[0]}"

    formula = " and ".join("(" + " or ".join(map(text, clause)) + ")" for clause in clauses)
    gold = sum(
        all(any(bits[v - 1] != neg for v, neg in clause) for clause in clauses)
        for bits in itertools.product((False, True), repeat=n)
    )
    names = ", ".join(f"p{i}" for i in range(1, n + 1))
    question = (f"Variables {names} are each True or False. For how many of the {2**n} assignments is "
                f"the following formula true?\n{formula}")
    code = (f"from itertools import product\nformula = {formula!r}\ncount = 0\nfor bits in product((False, True), "
            f"repeat={n}):\n    env = {{f'p{{i + 1}}': b for i, b in enumerate(bits)}}\n"
            "    count += eval(formula, {}, env)\nprint(count)")
    return question, gold, code


BUILTIN_TEMPLATES: tuple[Template, ...] = (
    _multiples, _prime_count, _fibonacci_mod, _lattice_paths, _digit_sum_power, _divisor_count, _power_mod,
    _coin_change, _trailing_zeros, _crt, _dice_sum, _collatz, _increasing_digits, _word_arrangements,
    _square_sum_gap, _larger_of_two_rolls, _satisfying_assignments,
)


def builtin_task(index: int, seed: int = 0) -> MathTask:
    """Built-in task ``index``: template ``index % 17`` with parameters drawn from ``(seed, index)``."""
    template = BUILTIN_TEMPLATES[index % len(BUILTIN_TEMPLATES)]
    question, gold, solution = template(random.Random(f"builtin:{seed}:{index}"))
    return MathTask(f"builtin/{index}", question, _fmt(gold), solution, "builtin")


# -- reasoning-gym --------------------------------------------------------------------------
class ReasoningGymSource:
    """reasoning-gym datasets, one per family, all seeded with ``seed``; items made on demand."""

    def __init__(self, families: Sequence[str], size: int, seed: int) -> None:
        import reasoning_gym  # ~1 s: sympy and matplotlib come with it

        unknown = sorted(set(families) - set(reasoning_gym.factory.DATASETS))
        if unknown:
            raise ValueError(f"unknown reasoning-gym families {unknown}")
        self.size, self.seed = size, seed
        self.datasets = {f: reasoning_gym.create_dataset(f, seed=seed, size=size) for f in families}

    def task(self, family: str, index: int) -> MathTask:
        entry = self.datasets[family][index]
        answer = str(entry["answer"])
        solution = f"answer = {answer!r}\nprint(answer)"
        return MathTask(f"rg/{family}/{index}", entry["question"], answer, solution, f"rg/{family}", entry)

    def score(self, task: MathTask, answer: str, *, timeout: float = GRADE_TIMEOUT) -> float:
        """:meth:`grade`'s score alone."""
        return self.grade(task, answer, timeout=timeout)[0]

    def grade(self, task: MathTask, answer: str, *, timeout: float = GRADE_TIMEOUT) -> tuple[float, str | None]:
        """The generator's own scorer, run in a grading worker with a hard ``timeout`` (some use
        sympy); ``(score, why)`` as :func:`math_grade` (a scorer that raises scores 0, logged)."""
        family = task.source.removeprefix("rg/")
        index = int(task.id.rpartition("/")[2])
        graded = bounded_call("agentgym.envs.code.tasks:rg_score", [family, self.seed, self.size, index, answer],
                              timeout=timeout, warm=("agentgym.envs.code.tasks:rg_dataset", [family, self.seed, self.size]))
        if graded.stopped:
            return 0.0, f"the answer could not be graded: {graded.error}"
        if graded.error is not None:
            log.warning("reasoning-gym %s scorer raised on %.80r: %s", family, answer, graded.error)
            return 0.0, None
        return float(graded.value), None


_RG_DATASETS: dict[tuple[str, int, int], Any] = {}


def rg_dataset(family: str, seed: int, size: int) -> Any:
    """A reasoning-gym dataset, made once per grading worker (its warm-up)."""
    key = (family, seed, size)
    if key not in _RG_DATASETS:
        import reasoning_gym

        _RG_DATASETS[key] = reasoning_gym.create_dataset(family, seed=seed, size=size)
    return None


def rg_score(family: str, seed: int, size: int, index: int, answer: str) -> float:
    """reasoning-gym's scorer on item ``index``, unbounded: only ever called in a grading worker."""
    rg_dataset(family, seed, size)
    dataset = _RG_DATASETS[(family, seed, size)]
    return float(dataset.score_answer(answer, dataset[index]))
