"""Unit tests of .env parsing.

Expected values were read from docker compose v2.40.3 (each key shown through a label
``"${KEY-<UNSET>}"`` with only HOSTV=hostval in the environment).
"""

from __future__ import annotations

import pytest

from pycompose.compose.dotenv import parse_dotenv
from pycompose.compose.errors import ComposeError

HOST = {"HOSTV": "hostval"}


def parse(text: str, env: dict[str, str] | None = None) -> dict[str, str]:
    return parse_dotenv(text, ".env", (HOST if env is None else env).get)


def error(text: str) -> ComposeError:
    with pytest.raises(ComposeError) as info:
        parse(text)
    return info.value


def test_a_typical_file() -> None:
    text = (
        "# comment\n"
        "A=1\n"
        " B = spaced \n"
        "export C=exported\n"
        "D=\n"
        "E\n"
        "F='single $A \\n #x'\n"
        'G="double $A \\n \\t \\\\ \\" \\$A ${A} end"\n'
        "H=unquoted # comment\n"
        "I=unquoted#nocomment\n"
        'J="multi\nline"\n'
        "K='multi\nsingle'\n"
        "L=${A}-${B}-$HOSTV-${NOPE:-dflt}\n"
        'M="quoted" # trailing comment\n'
        "O=a=b=c\n"
        "P=  lead and trail  \n"
        "Q=$A$B\n"
        'S="a\\rb\\x"\n'
        "T=${E:-efault}\n"
    )
    assert parse(text) == {
        "A": "1",
        "B": "spaced",
        "C": "exported",
        "D": "",
        "F": "single $A \\n #x",
        "G": 'double 1 \n \t \\ " $A 1 end',
        "H": "unquoted",
        "I": "unquoted#nocomment",
        "J": "multi\nline",
        "K": "multi\nsingle",
        "L": "1-spaced-hostval-dflt",
        "M": "quoted",
        "O": "a=b=c",
        "P": "lead and trail",
        "Q": "1spaced",
        "S": "a\rb\\x",
        "T": "efault",
    }


def test_bare_key_takes_the_value_from_lookup_or_is_left_out() -> None:
    assert parse("HOSTV\nNOPE\nexport B\n") == {"HOSTV": "hostval"}
    assert parse("HOSTV") == {"HOSTV": "hostval"}  # at the end of the file, no newline


def test_lookup_wins_over_earlier_keys_when_interpolating() -> None:
    # reference: with A=osval in the environment, B=$A is "osval" but A keeps its own value
    assert parse('A=fileval\nB=$A\nC="${A}"\n', {"A": "osval"}) == {
        "A": "fileval",
        "B": "osval",
        "C": "osval",
    }
    assert parse("A=fileval\nB=$A\n", {}) == {"A": "fileval", "B": "fileval"}


def test_later_keys_win_and_can_refer_to_earlier_values() -> None:
    assert parse("K=1\nK=2\nL=a\nL=${L}b\n") == {"K": "2", "L": "ab"}


def test_yaml_style_colon_and_spacing() -> None:
    assert parse("C: colon\nA:1\nB =\n") == {"C": "colon", "A": "1", "B": ""}


def test_unquoted_values() -> None:
    assert parse("A=#x\nB= #y\nC=$$\nE=a$$b\nF=1 2 3\nG=x\t#tab\nH=x\\ y\nI=`bt`\n") == {
        "A": "#x",
        "B": "#y",
        "C": "$",
        "E": "a$b",
        "F": "1 2 3",
        "G": "x\t#tab",
        "H": "x\\ y",
        "I": "`bt`",
    }


def test_backslash_is_not_an_escape_in_unquoted_values() -> None:
    warnings: list[str] = []
    assert parse_dotenv("R=\\$escaped\n", ".env", HOST.get, warn=warnings.append) == {"R": "\\"}
    assert warnings == ['.env R: the "escaped" variable is not set, defaulting to a blank string']


def test_double_quoted_escapes() -> None:
    text = (
        'E="a\\bb\\fc\\vd\\ae"\n'
        'F="\\\\$HOSTV"\n'
        'G="\\${HOSTV}"\n'
        'P="a\\\\nb"\n'
        'Q="\\\'"\n'
        'U="\\u00e9"\n'
        'Z="a\\0b"\n'
        'D="$$"\n'
        'Y="x # y"\n'
        'W="a\\\\"\n'
    )
    assert parse(text) == {
        "E": "a\bb\fc\vd\ae",
        "F": "\\hostval",
        "G": "${HOSTV}",
        "P": "a\\nb",
        "Q": "\\'",
        "U": "\\u00e9",
        "Z": "a\\b",  # reference: backslash-zero becomes a lone backslash
        "D": "$",
        "Y": "x # y",
        "W": "a\\",
    }


def test_single_quotes_are_literal_except_an_escaped_quote() -> None:
    assert parse("A='a\\'b'\nB='a\\\\b'\nC='$HOSTV ${X:?}'\n") == {
        "A": "a'b",
        "B": "a\\\\b",
        "C": "$HOSTV ${X:?}",
    }


def test_quotes_inside_other_quotes() -> None:
    assert parse('M="\'inner\'"\nN=\'"inner"\'\nG= "lead"\n') == {
        "M": "'inner'",
        "N": '"inner"',
        "G": "lead",
    }


def test_text_after_a_closing_quote_is_the_next_statement() -> None:
    # reference: D=x and "y" becomes a bare key; 'q' trailing=5 sets trailing
    assert parse("D = \"x\"y\nN='q' trailing=5\n") == {"D": "x", "N": "q", "trailing": "5"}


def test_key_characters_and_export_prefix() -> None:
    assert parse("A.B=1\nA-B=2\nA[0]=3\né=4\nexportX=5\nexport\tY=6\nexport  Z=7\n") == {
        "A.B": "1",
        "A-B": "2",
        "A[0]": "3",
        "é": "4",
        "exportX": "5",
        "Y": "6",
        "Z": "7",
    }


def test_empty_key_is_kept_like_docker_compose() -> None:
    assert parse("=x\n") == {"": "x"}


def test_windows_line_endings_and_indentation() -> None:
    assert parse('A=1\r\n  B=2\r\n\tC=3\r\nD="y"\r\n') == {"A": "1", "B": "2", "C": "3", "D": "y"}


def test_byte_order_mark_and_empty_files() -> None:
    assert parse("\ufeffA=1\n") == {"A": "1"}
    assert parse("") == {}
    assert parse("\n# only comments\n   \n") == {}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A@B=1\n", 1, "unexpected character '@' in variable name 'A@B=1'"),
        ("X=1\nA$=1\n", 2, "unexpected character '$'"),
        ('"A"=1\n', 1, "unexpected character '\"'"),
        ("A,B=1\n", 1, "unexpected character ','"),
        ("A B=1\n", 1, "key 'A B' cannot contain a space"),
        ("just some words\n", 1, "cannot contain a space"),
        ('A="unterminated\nB=2\n', 1, 'unterminated quoted value "unterminated'),
        ("X=1\n\nA='unterminated\n", 3, "unterminated quoted value 'unterminated"),
    ],
)
def test_invalid_lines(text: str, line: int, message: str) -> None:
    err = error(text)
    assert err.file == ".env"
    assert err.line == line
    assert message in err.message


def test_invalid_interpolation_names_the_line_and_key() -> None:
    err = error("A=1\nB=${C\n")
    assert str(err).startswith(".env:2 B: invalid interpolation format '${C'")


def test_required_variable() -> None:
    err = error('A=1\nB="${NOPE:?please set NOPE}"\n')
    assert str(err) == ".env:2 B: required variable NOPE is missing a value: please set NOPE"


def test_unset_variables_warn() -> None:
    warnings: list[str] = []
    result = parse_dotenv('A="${NOPE}"\n', ".env", HOST.get, warn=warnings.append)
    assert result == {"A": ""}
    assert len(warnings) == 1
    assert '"NOPE"' in warnings[0]
