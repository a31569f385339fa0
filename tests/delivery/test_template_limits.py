"""Tenant templates: sandbox escapes are refused, runaway templates are cut off quickly."""

from __future__ import annotations

import time

import pytest
from jinja2.exceptions import SecurityError, UndefinedError

from postgate.core.rendering import CampaignContent, CompiledCampaign, RecipientData
from postgate.core.template_limits import LimitedEnvironment, Limits, TemplateLimitError

ENV = LimitedEnvironment()
RUNAWAY = {
    "nested-range": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "nested-literals": "".join(
        "{% for x" + str(i) + " in [0,0,0,0,0,0,0,0,0,0] %}" for i in range(8)
    )
    + "{% endfor %}" * 8,
    "macro-loops": "{% macro m() %}{% for i in range(50) %}{{ m() }}{% endfor %}{% endmacro %}"
    "{{ m() }}",
    "macro-recursion": "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
    "huge-repeat": "{{ 'x' * 1000000000 }}",
    "huge-list": "{{ ([0] * 100000000)|length }}",
    "huge-power": "{{ 7 ** 100000000 }}",
    "huge-center": "{{ 'x'|center(1000000000) }}",
    "huge-indent": "{{ 'a\nb'|indent(1000000000) }}",
    "huge-percent": "{{ '%1000000000s' % 'x' }}",
    "huge-format": "{{ '{:>1000000000}'.format('x') }}",
    "huge-lipsum": "{{ lipsum(1000000000) }}",
    "doubling": "{% set ns = namespace(s='0123456789') %}{% for i in range(64) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "huge-replace": "{{ ('x' * 999999)|replace('x', 'x' * 999) }}",
    "huge-replace-method": "{{ ('x' * 999999).replace('x', 'yy') }}",
    "huge-indent-lines": "{{ ('\\n' * 999999)|indent(999) }}",
    "huge-expandtabs": "{{ ('\\t' * 999999).expandtabs(999) }}",
    "huge-join": "{{ ([('x' * 999999)] * 999)|join }}",
    "huge-join-method": "{{ '-'.join([('x' * 999999)] * 999) }}",
    "slow-loop": "{% for i in range(99999) %}{{ ('x' * 999999)|replace('x', 'y')|length }}"
    "{% endfor %}",
    "big-output": "{% for i in range(90000) %}{{ name }}-{{ i }}..........{% endfor %}",
    "recursive-loop": "{% for x in [[1]] recursive %}{{ loop(x) }}{% endfor %}",
}


@pytest.mark.parametrize("source", RUNAWAY.values(), ids=RUNAWAY.keys())
def test_runaway_templates_stop_fast_with_a_clear_error(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateLimitError) as err:
        ENV.from_string(source).render(name="Anna")
    assert time.perf_counter() - started < 2
    assert "template" in str(err.value) or "argument" in str(err.value)


ESCAPES = [
    "{{ name.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['__builtins__'] }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ range.__self__ }}",
    "{{ (name|attr('__class__')) }}",
    "{{ self._TemplateReference__context }}",
    "{{ contact.items.__self__.__class__ }}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused(source: str) -> None:
    template = ENV.from_string(source)
    with pytest.raises((SecurityError, UndefinedError)):
        out = template.render(name="Anna", contact={"a": 1})
        # a refused attribute renders as an undefined value: nothing leaks either way
        assert out.strip() == "", out
        raise UndefinedError("rendered nothing")


def test_no_access_to_config_files_or_imports() -> None:
    for source in [
        "{% include '/etc/passwd' %}",
        "{% import 'os' as os %}",
        "{% extends '/etc/hostname' %}",
    ]:
        with pytest.raises(Exception) as err:
            ENV.from_string(source).render()
        assert "no loader" in str(err.value) or "TemplateNotFound" in type(err.value).__name__


def test_ordinary_templates_render_within_the_budget() -> None:
    source = (
        "{% for p in contact.products %}{{ loop.index }}. {{ p|title }} "
        "{{ '%.2f'|format(19.5) }} {{ '{:>4}'.format('x') }}\n{% endfor %}{{ name|upper }}"
        "{{ contact.products|join(', ') }} {{ name.replace('a', 'A') }} "
        "{{ 'a\nb'|indent(2) }} {{ (name * 3)|truncate(5) }}"
    )
    out = ENV.from_string(source).render(name="anna", contact={"products": ["tea", "jam"]})
    assert out == "1. Tea 19.50    x\n2. Jam 19.50    x\nANNAtea, jam AnnA a\n  b an..."


def test_limits_are_per_render_not_per_template() -> None:
    env = LimitedEnvironment(Limits(max_steps=50))
    template = env.from_string("{% for i in range(30) %}.{% endfor %}")
    for _ in range(5):
        assert template.render() == "." * 30
    with pytest.raises(TemplateLimitError, match="50 loop steps"):
        env.from_string("{% for i in range(60) %}.{% endfor %}").render()


def test_a_runaway_campaign_template_fails_in_the_renderer_too() -> None:
    content = CampaignContent(
        1,
        "acme",
        "acme.example",
        "promotional",
        "Hi",
        RUNAWAY["nested-range"],
        "",
        "news@acme.example",
        "Acme",
    )
    with pytest.raises(TemplateLimitError):  # static parts render once, when compiled
        CompiledCampaign(content, "secret", "https://pg.example", "bounces.example").render(
            RecipientData(1, "a@x.example", "Anna"), "d"
        )
