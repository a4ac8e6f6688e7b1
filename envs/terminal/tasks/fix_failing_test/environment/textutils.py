import re


def slugify(text: str) -> str:
    """Lower-case words of letters and digits joined by single hyphens: "Hello, World!" -> "hello-world"."""
    words = re.split(r"[^A-Za-z0-9]", text.lower())
    return "-".join(words)
