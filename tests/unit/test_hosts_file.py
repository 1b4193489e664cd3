"""The managed block of /etc/hosts: replaced in place, appended once, the rest untouched."""

from __future__ import annotations

from tasks.hosts_file import BEGIN, END, render_block, replace_block

ENTRIES = [("10.240.0.11", ["kube.controller01"]), ("127.0.0.1", ["kube.apiserver"])]


def test_render_block_lists_every_entry_between_markers() -> None:
    block = render_block(ENTRIES)
    assert block.splitlines() == [
        BEGIN,
        "10.240.0.11 kube.controller01",
        "127.0.0.1 kube.apiserver",
        END,
    ]


def test_the_block_is_appended_once_and_then_idempotent() -> None:
    original = "127.0.0.1 localhost\n::1 localhost"
    once = replace_block(original, render_block(ENTRIES))
    assert once.startswith("127.0.0.1 localhost\n::1 localhost\n" + BEGIN)
    assert replace_block(once, render_block(ENTRIES)) == once


def test_the_block_is_replaced_in_place_keeping_lines_around_it() -> None:
    current = f"127.0.0.1 localhost\n{BEGIN}\n10.0.0.9 stale\n{END}\n10.9.9.9 mine\n"
    updated = replace_block(current, render_block(ENTRIES))
    assert "stale" not in updated
    assert updated.startswith("127.0.0.1 localhost\n" + BEGIN)
    assert updated.endswith(END + "\n10.9.9.9 mine\n")


def test_an_empty_file_gets_just_the_block() -> None:
    assert replace_block("", render_block(ENTRIES)) == render_block(ENTRIES)
