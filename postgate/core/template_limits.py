"""A Jinja2 sandbox with a budget: tenant templates cannot run away with time or memory.

On top of :class:`SandboxedEnvironment` (no private attributes, no unsafe callables):

- every ``{% for %}`` iterable is wrapped at compile time in a counting filter, so
  loops (nested, in macros, over literals) share one iteration budget per render;
- a wall-clock deadline is checked on loop steps, calls and output chunks;
- output is streamed and cut off past ``max_output_chars``;
- ``*``, ``**`` and ``%`` refuse results or format widths past the size limit, calls
  refuse integer arguments that big (``"x"|center(10**9)``) and ``replace``,
  ``indent``, ``expandtabs`` and ``join`` are sized before they run, so nothing huge
  is allocated; ``~`` joins are checked as they are built;
- recursive loops are refused when the template is compiled.

Every refusal raises :class:`TemplateLimitError` with a message a tenant can act on.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import Template, nodes, pass_context
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from postgate.core.message import MessageError


class TemplateLimitError(MessageError):
    """A template that broke the render limits; the text says which."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_steps: int = 100_000  # loop iterations and calls per render
    max_seconds: float = 0.5
    max_output_chars: int = 1_000_000


_WIDE_FORMAT = re.compile(r"\d{7,}")


class Budget:
    __slots__ = ("deadline", "limits", "steps")

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.steps = 0
        self.deadline = time.perf_counter() + limits.max_seconds

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise TemplateLimitError(
                f"template exceeded {self.limits.max_steps} loop steps and calls"
            )
        if not self.steps & 63 and time.perf_counter() > self.deadline:
            raise TemplateLimitError(
                f"template took longer than {self.limits.max_seconds:g}s to render"
            )

    def size(self, value: Any) -> Any:
        if isinstance(value, str | list | tuple) and len(value) > self.limits.max_output_chars:
            raise TemplateLimitError(
                f"template built a value over {self.limits.max_output_chars} characters"
            )
        return value


_BUDGET: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


def _budget() -> Budget:
    budget = _BUDGET.get()
    if budget is None:
        raise TemplateLimitError("limited templates render only through render()")
    return budget


@pass_context
def _counted(context: Context, iterable: Any) -> Any:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


@pass_context
def _sized(context: Context, value: Any) -> Any:
    return _budget().size(value)


def _joined_size(items: Any, separator: str) -> int:
    if not isinstance(items, list | tuple):
        return 0
    return sum(len(x) for x in items if isinstance(x, str)) + len(separator) * len(items)


def grows_to(name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    """An upper bound of what a string operation that can multiply its input builds
    (``replace``, ``indent``, ``expandtabs``, ``join``); 0 for every other operation."""
    if not isinstance(value, str):
        return _joined_size(value, str(args[0]) if args else "") if name == "join" else 0
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        count = value.count(old) if old else len(value) + 1
        return len(value) + count * max(0, len(new) - len(old))
    if name in ("indent", "expandtabs"):
        width = args[0] if args else kwargs.get("width", kwargs.get("tabsize", 8))
        width = len(width) if isinstance(width, str) else int(width)
        return len(value) + (value.count("\n" if name == "indent" else "\t") + 1) * width
    if name == "join" and args:  # str.join: value is the separator
        return _joined_size(args[0], value)
    return 0


class LimitedTemplate(Template):
    def render(self, *args: Any, **kwargs: Any) -> str:
        return render(self, dict(*args, **kwargs))


class LimitedEnvironment(SandboxedEnvironment):
    template_class = LimitedTemplate
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, limits: Limits | None = None, **options: Any) -> None:
        super().__init__(**options)
        self.limits = limits or Limits()
        self.filters = {name: self._guarded(name, f) for name, f in self.filters.items()}
        self.filters["pg_counted"] = _counted
        self.filters["pg_sized"] = _sized

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            if loop.recursive:
                raise TemplateLimitError("recursive loops are not allowed in templates")
            loop.iter = nodes.Filter(
                loop.iter, "pg_counted", [], [], None, None, lineno=loop.lineno
            )
        for concat in list(tree.find_all(nodes.Concat)):
            concat.nodes = [
                nodes.Filter(n, "pg_sized", [], [], None, None, lineno=n.lineno)
                for n in concat.nodes
            ]
        return tree

    def _check_args(self, args: tuple[Any, ...]) -> None:
        limit = self.limits.max_output_chars
        for arg in args:
            if isinstance(arg, int) and not isinstance(arg, bool) and arg > limit:
                raise TemplateLimitError(f"argument {arg} too large in template")

    def _check_growth(
        self, name: str, value: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        limit = self.limits.max_output_chars
        if grows_to(name, value, args, kwargs) > limit:
            raise TemplateLimitError(f"template {name} would build a value over {limit} characters")

    def _guarded(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        skip = 1 if getattr(fn, "jinja_pass_arg", None) else 0  # context / eval ctx / env

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            self._check_args((*args, *kwargs.values()))
            if len(args) > skip:
                self._check_growth(name, args[skip], args[skip + 1 :], kwargs)
            return fn(*args, **kwargs)

        return guarded

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        owner = getattr(value, "__self__", None)
        if isinstance(owner, str) and _WIDE_FORMAT.search(owner):
            raise TemplateLimitError("format width too large in template")
        return super().wrap_str_format(value)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        limit = self.limits.max_output_chars
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > limit
                ):
                    raise TemplateLimitError(f"template built a value over {limit} characters")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(right) * max(abs(left), 2).bit_length() > 4 * limit
            ):
                raise TemplateLimitError("number too large in template")
        elif operator == "%" and isinstance(left, str) and _WIDE_FORMAT.search(left):
            raise TemplateLimitError("format width too large in template")
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        __self._check_args((*args, *kwargs.values()))
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            __self._check_growth(getattr(__obj, "__name__", ""), owner, args, kwargs)
        return budget.size(super().call(__context, __obj, *args, **kwargs))


def render(template: Any, context: dict[str, Any] | None = None) -> str:
    """Render ``template`` within its environment's limits, or raise TemplateLimitError."""
    env = template.environment
    limits: Limits = getattr(env, "limits", Limits())
    budget = Budget(limits)
    token = _BUDGET.set(budget)
    try:
        out: list[str] = []
        size = 0
        for chunk in template.root_render_func(template.new_context(context or {})):
            size += len(chunk)
            if size > limits.max_output_chars:
                raise TemplateLimitError(
                    f"template output is over {limits.max_output_chars} characters"
                )
            out.append(chunk)
            if not len(out) & 255 and time.perf_counter() > budget.deadline:
                raise TemplateLimitError(
                    f"template took longer than {limits.max_seconds:g}s to render"
                )
        return "".join(out)
    except (TemplateLimitError, SecurityError):
        raise
    except RecursionError:
        raise TemplateLimitError("template recursion too deep") from None
    except Exception:
        env.handle_exception()  # re-raises with the template's line in the traceback
        raise
    finally:
        _BUDGET.reset(token)
