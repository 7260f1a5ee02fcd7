"""The README and docs/: every relative link and #anchor resolves, and the README's picture is
the one hack/operator-day.py draws."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def anchors(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes."""
    out = set()
    for heading in re.findall(r"^#+ (.+)$", text, flags=re.MULTILINE):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out


def test_every_relative_link_resolves() -> None:
    broken = []
    checked = 0
    for path in FILES:
        for link in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if link.startswith(("http://", "https://")):
                continue
            checked += 1
            target_part, _, fragment = link.partition("#")
            target = (path.parent / target_part).resolve() if target_part else path
            if not target.exists():
                broken.append(f"{path.name}: {link}")
            elif (
                fragment and target.suffix == ".md" and fragment not in anchors(target.read_text())
            ):
                broken.append(f"{path.name}: {link} (no such heading)")
    assert broken == []
    assert checked > 30


def test_readme_is_a_quick_start_with_a_table_of_contents() -> None:
    text = (ROOT / "README.md").read_text()
    first_screen = "\n".join(text.splitlines()[:40])
    assert "![One day of the operator on the local cluster](docs/operator-day.png)" in first_screen
    assert "## Contents" in first_screen
    assert "export KUBECONFIG=$PWD/hack/.state/demo/cluster/kubeconfig" in text
    assert "hack/operator-day.py" in text and (ROOT / "hack" / "operator-day.py").is_file()
    assert len(text.encode()) < 30_000, "reference material belongs in docs/"
    demo = (ROOT / "hack" / "demo.sh").read_text()
    assert 'echo "  export KUBECONFIG=$KUBECONFIG"' in demo
    assert "hack/.state/demo" in demo
