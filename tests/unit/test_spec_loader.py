"""The strict YAML reader: what YAML would accept silently is refused, each problem with its line and column."""

from __future__ import annotations

import pytest
from fleetwave.core.spec import MAX_SPEC_BYTES, Size, SpecError, load_spec_text, load_yaml
from fleetwave.core.spec import loader as spec_loader

HEAD = """\
name: demo
document:
  name: AWS-RunShellScript
  parameters:
    commands: [uptime]
targets:
  tags:
    Role: [web]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SpecError) as error:
        load_spec_text(text, source="s.yaml")
    return error.value.problems


def test_a_duplicated_key_is_refused_instead_of_the_last_one_winning():
    # The case: a 4-wave rollout silently became one wave over the whole fleet.
    text = HEAD + 'waves: [1, "10%", "50%", "100%"]\nbake_time: 30m\nwaves: ["100%"]\n'
    assert problems(text) == [
        "s.yaml:11:1: waves: written twice (first at line 9, column 1); YAML would keep only the last"
    ]


def test_a_duplicated_key_deep_inside_is_refused_too():
    text = HEAD.replace("    commands: [uptime]\n", "    commands: [uptime]\n    commands: [reboot]\n")
    assert problems(text) == [
        "s.yaml:6:5: document.parameters.commands: written twice (first at line 5, column 5); "
        "YAML would keep only the last"
    ]


@pytest.mark.parametrize(
    ("key", "kind"), [("1", "a number"), ("true", "true/false"), ("2.5", "a number"), ("null", "empty (null)")]
)
def test_keys_that_are_not_text_are_refused(key: str, kind: str):
    assert problems(HEAD + f"{key}: x\n") == [
        f"s.yaml:9:1: the key '{key}' is read as {kind}; keys are text: write it in quotes"
    ]


def test_a_list_as_a_key_is_refused():
    assert problems(HEAD + "? [a, b]\n: x\n") == ["s.yaml:9:3: a key must be text, not a list or a mapping"]


def test_yaml_1_1_surprises_stay_text():
    data, _ = load_yaml("on: yes\ntime: 22:00\nversion: 010\noctal: 0o17\nflag: true\nnothing: ~\nday: 2026-01-01\n")
    assert data == {
        "on": "yes",
        "time": "22:00",
        "version": 10,
        "octal": 15,
        "flag": True,
        "nothing": None,
        "day": "2026-01-01",
    }


def test_an_unquoted_time_of_day_is_read_as_written():
    spec = load_spec_text(HEAD + "blackout_windows:\n  - {start: 22:00, end: 02:00}\n")
    assert spec.blackout_windows[0].start.hour == 22 and spec.blackout_windows[0].end.hour == 2


def test_a_few_aliases_and_merge_keys_work():
    text = HEAD.replace(
        "targets:\n  tags:\n    Role: [web]\n", "targets:\n  tags:\n    Role: &roles [web]\n    Tier: *roles\n"
    )
    text += "x_defaults: &defaults {slack: false, email: true}\n"
    spec_text = text.replace("x_defaults: &defaults {slack: false, email: true}\n", "")
    assert load_spec_text(spec_text).targets.tags == {"Role": ["web"], "Tier": ["web"]}
    data, _ = load_yaml("base: &base {a: 1, b: 2}\nderived:\n  <<: *base\n  b: 3\n")
    assert data["derived"] == {"a": 1, "b": 3}  # the mapping's own key wins over the merged one


ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_an_alias_bomb_is_refused_while_it_is_read_before_anything_is_expanded(monkeypatch: pytest.MonkeyPatch):
    def never(*args, **kwargs):
        raise AssertionError("the bomb reached the building of values")

    monkeypatch.setattr(spec_loader.StrictLoader, "build", never)
    assert len(ALIAS_BOMB.encode()) < 700
    assert problems(ALIAS_BOMB) == ["s.yaml:3:29: more than 16 YAML aliases (*b); a spec may use at most 16"]


def test_a_recursive_alias_is_refused():
    assert problems("name: x\ndocument: &doc\n  name: *doc\n") == [
        "s.yaml:3:3: document.name: a YAML alias refers to a value that contains it (recursive alias)"
    ]


def test_nesting_too_deep_is_refused():
    text = "name: " + "[" * 40 + "]" * 40 + "\n"
    (problem,) = problems(text)
    assert problem.startswith("s.yaml:1:") and "nested deeper than 32 levels" in problem


@pytest.mark.parametrize(
    ("value", "shown"),
    [("!!binary aGVsbG8=", "!!binary"), ("!!set {a, b}", "!!set"), ("!!timestamp 2026-01-01", "!!timestamp")],
)
def test_yaml_tags_beyond_plain_json_types_are_refused(value: str, shown: str):
    assert problems(f"name: {value}\n") == [
        f"s.yaml:1:7: name: the YAML tag {shown} is not allowed in a spec "
        "(only text, numbers, true/false, null, lists and mappings)"
    ]


def test_an_unknown_local_tag_is_refused_with_its_place():
    (problem,) = problems("name: !shell x\n")
    assert problem.startswith("s.yaml:1:7: ") and "!shell" in problem


def test_syntax_errors_and_several_documents_name_the_place():
    assert problems("name: x\ndocument: [unclosed\n") == [
        "s.yaml:3:1: YAML syntax error: did not find expected ',' or ']'"
    ]
    (problem,) = problems("name: x\n---\nname: y\n")
    assert problem.startswith("s.yaml:2:1: YAML syntax error: ") and "single document" in problem


def test_a_file_over_the_size_limit_is_refused_where_the_limit_is_passed():
    line = "# " + "x" * 1021 + "\n"  # 1 KiB a line, newline included
    text = HEAD + line * (MAX_SPEC_BYTES // 1024 + 1)
    (problem,) = problems(text)
    limit_line = (MAX_SPEC_BYTES - len(HEAD)) // 1024 + 9
    assert problem.startswith(f"s.yaml:{limit_line}:")
    assert "a spec may be at most 8 MiB (this is where that limit is passed)" in problem


def test_a_spec_just_under_the_size_limit_is_read():
    padding = ("# " + "x" * 1021 + "\n") * ((MAX_SPEC_BYTES - 4096) // 1024)
    assert load_spec_text(HEAD + padding + "waves: [1]\n").waves == [Size(count=1)]
