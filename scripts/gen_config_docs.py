"""Write docs/CONFIG.md from the Settings model. Usage: python scripts/gen_config_docs.py"""

from __future__ import annotations

from pathlib import Path

from fedclient.app.config_docs import render_markdown

OUT = Path(__file__).resolve().parent.parent / "docs" / "CONFIG.md"

if __name__ == "__main__":
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {OUT}")
