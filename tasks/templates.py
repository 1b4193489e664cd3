"""Render templates/<component>/<file>.j2 with nornir-jinja2 and put the result on the host."""

from __future__ import annotations

from typing import Any

import jinja2
from nornir.core.task import Task
from nornir_jinja2.plugins.tasks import template_file

from kubenorn.nornir_setup import REPO_ROOT

TEMPLATES_DIR = REPO_ROOT / "templates"

# One environment for every template: an undefined name is an error, never an empty string.
ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


class TemplateError(Exception):
    """A template could not be rendered; the message names the template and the problem."""


def render(task: Task, template: str, **data: Any) -> str:
    """The text of `template` rendered with `data` (and `host`) through nornir-jinja2."""
    try:
        result = task.run(
            task=template_file, template=template, jinja_env=ENVIRONMENT, severity_level=10, **data
        )
    except Exception as error:  # nornir wraps the jinja2 error; report the original
        cause = getattr(error, "result", None)
        raise TemplateError(f"templates/{template}: {_cause(cause) or error}") from None
    return str(result.result)


def _cause(multi: Any) -> str:
    if not multi:
        return ""
    exception = multi[0].exception
    return f"{type(exception).__name__}: {exception}" if exception else ""
