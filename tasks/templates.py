"""Render templates/<component>/<file>.j2 with nornir-jinja2 and put the result on the host."""

from __future__ import annotations

from typing import Any

import jinja2
from nornir.core.task import Result, Task
from nornir_jinja2.plugins.tasks import template_file

from kubenorn.nornir_setup import REPO_ROOT
from tasks.files import ensure_file

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


def ensure_rendered(
    task: Task,
    *,
    template: str,
    path: str,
    data: dict[str, Any],
    mode: str = "0644",
    owner: str = "root",
    group: str | None = None,
    dry_run: bool | None = None,
) -> Result:
    """Ensure `path` holds `template` rendered with `data`; the diff in Result.diff."""
    content = render(task, template, **data)
    written = task.run(
        task=ensure_file,
        path=path,
        content=content,
        mode=mode,
        owner=owner,
        group=group,
        dry_run=dry_run,
    )
    return Result(host=task.host, changed=written.changed, diff=written[0].diff)
