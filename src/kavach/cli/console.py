"""The consoles every command prints through: rich, with unsafe characters escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console, HighlighterType, JustifyMethod, OverflowMethod, RenderableType
from rich.text import Text

from kavach.cli.safe_text import neutralize

if TYPE_CHECKING:
    from rich.status import Status
    from rich.style import Style


class SafeConsole(Console):
    """A console that shows control and format characters as escapes, never obeys them.

    rich turns every string it prints into Text through render_str (plain lines, table
    cells and titles, log lines), so escaping there covers all of them; Text objects made
    elsewhere must come from render.literal. A spinner's text is the exception rich makes
    (it is read as markup, not through render_str), so status escapes its own.
    """

    def status(self, status: RenderableType, **kwargs: Any) -> Status:
        """Show a spinner whose text is escaped and never read as markup."""
        if isinstance(status, str):
            status = Text(neutralize(status))
        return super().status(status, **kwargs)

    def render_str(
        self,
        text: str,
        *,
        style: str | Style = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        emoji: bool | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
        highlighter: HighlighterType | None = None,
    ) -> Text:
        """Turn `text` into Text as rich does, after escaping what a terminal would act on."""
        return super().render_str(
            neutralize(text),
            style=style,
            justify=justify,
            overflow=overflow,
            emoji=emoji,
            markup=markup,
            highlight=highlight,
            highlighter=highlighter,
        )
