"""Voucher code generation and the rules a code must follow.

Codes come from the operating system's CSPRNG (`secrets`). Each `#` of a pattern is one
character drawn uniformly from the charset, by rejection sampling so that no character is
more likely than another. The default charset leaves out the characters people confuse
(0/O, 1/I/L), and the default length gives 13 random characters from 31, i.e.
31**13 ~ 2.5e19 codes, 64.4 bits of entropy. Codes are matched case-insensitively: they are
stored and looked up upper-cased.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from redemption_core.domain.errors import InvalidInput

DEFAULT_CHARSET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
DEFAULT_LENGTH = 13
MIN_ENTROPY_BITS = 64.0
MAX_CODE_LENGTH = 64
# Characters an imported or standalone code may contain (after upper-casing).
CODE_PATTERN = re.compile(r"[A-Z0-9][A-Z0-9_-]{0,63}")
PLACEHOLDER = "#"
# What is trimmed from a typed code: ASCII blanks only (a paste often brings a newline).
ASCII_SPACES = " \t\r\n"


def normalize_code(value: object, field: str = "code") -> str:
    """The canonical form of a code a customer typed: ASCII spaces trimmed, upper-cased.

    What is not already in the code alphabet after trimming is refused, never folded: Unicode
    case mapping and whitespace rules would turn look-alikes into real codes (the ligature
    "\ufb01" upper-cases to "FI", the long s "\u017f" to "S", the dotless i "\u0131" to "I",
    and str.strip() removes an ideographic space), so a code is checked as ASCII first and
    upper-cased only then.
    """
    if not isinstance(value, str):
        raise InvalidInput(field, f"must be a string, got {type(value).__name__}")
    code = value.strip(ASCII_SPACES)
    if not code:
        raise InvalidInput(field, "must not be empty")
    if len(code) > MAX_CODE_LENGTH:
        raise InvalidInput(field, f"longer than {MAX_CODE_LENGTH} characters")
    if not code.isascii() or not CODE_PATTERN.fullmatch(code.upper()):
        raise InvalidInput(
            field, "may contain only letters A-Z, digits, '-' and '_' (no look-alike characters)"
        )
    return code.upper()


@dataclass(frozen=True)
class CodeConfig:
    """How a campaign's codes look: `pattern` has one `#` per random character."""

    charset: str = DEFAULT_CHARSET
    length: int = DEFAULT_LENGTH
    prefix: str = ""
    postfix: str = ""
    pattern: str | None = None
    min_entropy_bits: float = MIN_ENTROPY_BITS

    def __post_init__(self) -> None:
        charset = self.charset
        if not isinstance(charset, str) or len(charset) < 2 or len(set(charset)) != len(charset):
            raise InvalidInput("code_config.charset", "needs at least 2 distinct characters")
        if len(charset) > 256 or not all(c.isascii() and c.isalnum() for c in charset):
            raise InvalidInput("code_config.charset", "only ASCII letters and digits")
        if charset != charset.upper():
            raise InvalidInput("code_config.charset", "codes are upper case: use A-Z and 0-9")
        if self.pattern is None:
            if isinstance(self.length, bool) or not isinstance(self.length, int):
                raise InvalidInput("code_config.length", "must be an integer")
            if not 1 <= self.length <= MAX_CODE_LENGTH:
                raise InvalidInput("code_config.length", f"must be 1..{MAX_CODE_LENGTH}")
        elif not isinstance(self.pattern, str) or PLACEHOLDER not in self.pattern:
            raise InvalidInput("code_config.pattern", "must contain at least one '#'")
        if len(self.template) > MAX_CODE_LENGTH:
            raise InvalidInput("code_config", f"codes longer than {MAX_CODE_LENGTH} characters")
        if not CODE_PATTERN.fullmatch(self.template.replace(PLACEHOLDER, charset[0])):
            raise InvalidInput(
                "code_config", "prefix, postfix and pattern may use only A-Z, 0-9, '-' and '_'"
            )
        if self.entropy_bits < self.min_entropy_bits:
            raise InvalidInput(
                "code_config",
                f"{self.entropy_bits:.1f} bits of entropy is below the minimum of "
                f"{self.min_entropy_bits:g}; lengthen the code or lower min_entropy_bits",
            )

    @property
    def template(self) -> str:
        body = self.pattern if self.pattern is not None else PLACEHOLDER * self.length
        return f"{self.prefix}{body}{self.postfix}"

    @property
    def random_chars(self) -> int:
        return self.template.count(PLACEHOLDER)

    @property
    def entropy_bits(self) -> float:
        return self.random_chars * math.log2(len(self.charset))

    @property
    def code_space(self) -> int:
        return len(self.charset) ** self.random_chars

    def to_dict(self) -> dict[str, object]:
        return {
            "charset": self.charset,
            "length": self.length,
            "prefix": self.prefix,
            "postfix": self.postfix,
            "pattern": self.pattern,
            "min_entropy_bits": self.min_entropy_bits,
        }


class CodeGenerator:
    """Draws codes for one CodeConfig, fast: random bytes are filtered and mapped in C."""

    def __init__(
        self, config: CodeConfig, random_bytes: Callable[[int], bytes] = secrets.token_bytes
    ) -> None:
        self.config = config
        self._random_bytes = random_bytes  # the OS CSPRNG; only the simulator seeds its own
        size = len(config.charset)
        # Accept only byte values below the largest multiple of the charset size, so that
        # `byte % size` is uniform; reject (delete) the rest.
        accepted = 256 - 256 % size
        self._rejected = bytes(range(accepted, 256))
        self._to_chars = bytes(ord(config.charset[b % size]) for b in range(256))
        self._parts = config.template.split(PLACEHOLDER)

    def generate(self, count: int) -> list[str]:
        """`count` codes, not yet checked against each other or the ledger."""
        per_code = self.config.random_chars
        needed = count * per_code
        pool = b""
        while len(pool) < needed:
            raw = self._random_bytes(max(64, int((needed - len(pool)) * 1.25)))
            pool += raw.translate(None, self._rejected)
        chars = pool[:needed].translate(self._to_chars).decode("ascii")
        if len(self._parts) == 2:  # the usual shape: prefix + random body + postfix
            prefix, postfix = self._parts
            return [prefix + chars[i : i + per_code] + postfix for i in range(0, needed, per_code)]
        codes = []
        for start in range(0, needed, per_code):
            body = chars[start : start + per_code]
            pieces = [self._parts[0]]
            for index, part in enumerate(self._parts[1:]):
                pieces.append(body[index])
                pieces.append(part)
            codes.append("".join(pieces))
        return codes
