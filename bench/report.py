"""Merges the fragments the bench scripts wrote into results/latest.md and README.md.

Each script writes results/NAME.md (run.py: peerbench.md, callgrind.py: callgrind.md,
connections.py, idle_rss.py, latency.py: their own names). This joins those present, in the
order below, into results/latest.md and puts the same text into README.md between the
`<!-- results -->` and `<!-- /results -->` markers. Usage: python report.py
"""

from __future__ import annotations

from common import HERE, RESULTS

ORDER = [
    "peerbench",
    "callgrind",
    "connections",
    "idle_rss",
    "latency",
    "h2",
    "static",
    "slowloris",
    "django",
]
BEGIN, END = "<!-- results -->", "<!-- /results -->"


def main() -> None:
    parts = [
        (RESULTS / f"{name}.md").read_text().strip() for name in ORDER if (RESULTS / f"{name}.md").exists()
    ]

    def joined(chart: str) -> str:
        with_chart = (
            [*parts[:1], f"![ratios]({chart})", *parts[1:]] if (RESULTS / "latest.png").exists() else parts
        )
        return "\n\n".join(with_chart) + "\n"

    (RESULTS / "latest.md").write_text(joined("latest.png"))
    readme = HERE / "README.md"
    old = readme.read_text()
    if BEGIN in old and END in old:
        head, _, rest = old.partition(BEGIN)
        _, _, tail = rest.partition(END)
        readme.write_text(f"{head}{BEGIN}\n\n{joined('results/latest.png')}\n{END}{tail}")
    print(f"wrote {RESULTS / 'latest.md'} and {readme} ({len(parts)} parts)")


if __name__ == "__main__":
    main()
