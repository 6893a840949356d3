"""The dataset report: what was kept and dropped, and why; printed and saved as a dataset card."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from training.datasets.mixing import MixLine

__all__ = ["DatasetReport"]


@dataclass
class DatasetReport:
    """Counts of one dataset build.

    Attributes:
        kind: "sft" or "grpo".
        db: the source database.
        runs: the source runs (empty = all).
        considered: episodes read.
        dropped: reason -> episodes (or tasks, for GRPO) dropped for it.
        secrets: kind -> secrets redacted.
        mix: the mixing lines (empty when no mix was asked for).
        families: family -> rows kept (train + eval).
        splits: split name -> rows.
        options: the options of the build, for the card.
    """

    kind: str
    db: str
    runs: list[str]
    considered: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    secrets: Counter[str] = field(default_factory=Counter)
    mix: list[MixLine] = field(default_factory=list)
    families: Counter[str] = field(default_factory=Counter)
    splits: dict[str, int] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return sum(self.splits.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the report."""
        out = asdict(self)
        out["dropped"] = dict(self.dropped)
        out["secrets"] = dict(self.secrets)
        out["families"] = dict(self.families)
        out["kept"] = self.kept
        return out

    def to_text(self) -> str:
        """A plain-text summary for the terminal."""
        lines = [
            f"{self.kind.upper()} dataset from {self.db} (runs: {', '.join(self.runs) or 'all'})",
            f"  considered: {self.considered}   kept rows: {self.kept}   "
            + "   ".join(f"{k}: {v}" for k, v in self.splits.items()),
        ]
        if self.dropped:
            lines.append("  dropped:")
            lines += [f"    {reason:<40} {n}" for reason, n in self.dropped.most_common()]
        lines.append(
            "  secrets redacted: "
            + (", ".join(f"{k} {v}" for k, v in sorted(self.secrets.items())) + f" (total {sum(self.secrets.values())})"
               if self.secrets else "none")
        )
        if self.mix:
            lines.append("  mix (family: target share, available, taken):")
            lines += [f"    {m.family:<12} {m.target:>6.1%} {m.available:>7} {m.taken:>7}" for m in self.mix]
        if self.families:
            lines.append("  kept by family: " + ", ".join(f"{k} {v}" for k, v in sorted(self.families.items())))
        return "\n".join(lines)

    def to_card(self) -> str:
        """A Hugging Face dataset card (README.md) with the report."""
        header = "\n".join(
            [
                "---",
                "tags: [mcpgym, tool-use, " + ("sft" if self.kind == "sft" else "grpo") + "]",
                "configs:",
                "- config_name: default",
                "  data_files:",
                *[f"  - split: {name}\n    path: {name}.jsonl" for name in self.splits],
                "---",
            ]
        )
        fmt = (
            '`{"messages": [...], "tools": [...]}` (TRL conversational tool format; tool-call arguments are dicts)'
            if self.kind == "sft"
            else '`{"prompt": [...], "tools": [...], "task": {...}}` (`task` is what the verifier and environment need)'
        )
        body = [
            f"# mcpgym {self.kind.upper()} dataset",
            "",
            f"Built by `mcpgym dataset {self.kind}` from `{self.db}`, runs: {', '.join(self.runs) or 'all'}.",
            "",
            f"Row format: {fmt}.",
            "",
            "| split | rows |",
            "| --- | --- |",
            *[f"| {k} | {v} |" for k, v in self.splits.items()],
            "",
            f"Episodes considered: {self.considered}.",
            "",
            "## Dropped",
            "",
            "| reason | count |",
            "| --- | --- |",
            *([f"| {r} | {n} |" for r, n in self.dropped.most_common()] or ["| (none) | 0 |"]),
            "",
            "## Secrets redacted",
            "",
            "| kind | count |",
            "| --- | --- |",
            *([f"| {k} | {v} |" for k, v in sorted(self.secrets.items())] or ["| (none) | 0 |"]),
            "",
            "## Families",
            "",
            "| family | target share | available | taken | kept |",
            "| --- | --- | --- | --- | --- |",
        ]
        mix = {m.family: m for m in self.mix}
        for family in sorted(set(self.families) | set(mix)):
            m = mix.get(family)
            body.append(
                f"| {family} | {f'{m.target:.1%}' if m else '-'} | {m.available if m else '-'} | "
                f"{m.taken if m else '-'} | {self.families.get(family, 0)} |"
            )
        body += ["", "## Options", "", "```json", json.dumps(self.options, indent=2, sort_keys=True, default=str), "```"]
        return header + "\n\n" + "\n".join(body) + "\n"
