"""The end of a study at the terminal: the ranked table, what it means, where the files are."""
from __future__ import annotations

from rich.markup import escape

from dlrun.display import console
from dlrun.results.rundir import shown_dir


def print_report(result) -> None:
    from dlrun.study.display import comparison_table

    out = console()
    width = out.width
    if not out.is_terminal:  # a log or a pipe is not folded to 80 columns: one line per contender
        out.width = max(width, 200)
    try:
        out.print(comparison_table(result.comparison))
    finally:
        out.width = width
    ran = f"{result.trained} runs trained" + (f", {result.kept} kept from an earlier start" if result.kept else "")
    if result.status != "completed":
        out.print(f"[yellow]interrupted[/]: the comparison above holds the runs that finished ({ran}); "
                  "run the same command again to finish the study", soft_wrap=True)
    else:
        out.print(f"[green]done[/]: {ran}", soft_wrap=True)
    failed = result.comparison[result.comparison["status"] == "failed"]
    for _, row in failed.iterrows():
        out.print(f"[red]{escape(str(row['contender']))} failed[/]: {escape(str(row['reason']))}", soft_wrap=True)
    names = ", ".join(p.name for p in result.files)
    out.print(f"results: [bold]{escape(shown_dir(result.study_dir))}[/] ({escape(names)})", soft_wrap=True)
