"""The documentation: the site builds strictly (a broken link, a missing page or an API name that no longer
exists fails), every public name has its entry in the API reference, and the README's links lead somewhere."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import signvision as sv

ROOT = Path(__file__).resolve().parents[1]


def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(  # not -q: quiet drops the warnings that --strict counts (it built with three)
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "read_data" in api and "merge_probs" not in api  # the public names, not the internals
    home = (tmp_path / "site" / "index.html").read_text()
    text = re.sub(r"<[^>]+>", "", home)  # the highlighted code as text
    assert "sv.read_data(" in text and "predictions.to_csv(" in text
    assert "--8&lt;--" not in home and "--8<--" not in home  # the README's Python block, included, not its marker


def test_every_public_name_is_in_the_api_reference():
    documented = set(re.findall(r"^::: signvision\.([\w.]+)$", (ROOT / "docs" / "api.md").read_text(), re.M))
    from signvision import _EXPORTS

    missing = [name for name, (module, attr) in _EXPORTS.items() if f"{module}.{attr}" not in documented]
    assert not missing, f"public names without an API entry in docs/api.md: {missing}"
    assert len(documented) == len({f"{m}.{a}" for m, a in _EXPORTS.values()}), "docs/api.md lists a name twice"
    assert set(sv.__all__) == set(_EXPORTS)


def test_the_readme_is_a_front_door_whose_links_lead_somewhere():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) < 160, "the README is a front door: the rest belongs in docs/"
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", readme):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), f"README.md links to {target}, which is not there"
    assert readme.count("```bash") >= 2 and "make demo" in readme and "make test " in readme
