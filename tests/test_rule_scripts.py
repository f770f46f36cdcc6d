"""Every rule passes the params its script reads: a script shared by two rules (features_real.py serves
features_real and protocol_features_real) crashed in the one whose params lacked a key the other had. Checked
statically: the ``sm.params.<name>`` a script reads against the ``params:`` names of each rule that runs it (scripts
that dispatch on the rule are checked per rule by their own tests)."""

import re
from pathlib import Path

WORKFLOW = Path(__file__).resolve().parents[1] / "workflow"


def rules() -> list[tuple[str, set[str], str]]:
    """(rule name, its params names, its script path) of every rule with a script."""
    out = []
    for smk in sorted((WORKFLOW / "rules").glob("*.smk")):
        blocks = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            script = re.search(r'^    script:\n\s+"([^"]+)"', body, flags=re.M)
            if not script:
                continue
            params = re.search(r"^    params:\n((?:        .*\n|\s*\n)+)", body, flags=re.M)
            names = set(re.findall(r"^        (\w+)=", params.group(1), flags=re.M)) if params else set()
            out.append((name, names, str((smk.parent / script.group(1)).resolve())))
    return out


def test_rules_pass_the_params_their_scripts_read():
    found = rules()
    assert len(found) > 30
    problems = []
    for name, params, script in found:
        text = Path(script).read_text()
        if re.search(r"\bsm\.rule\b|snakemake\.rule\b", text):
            continue
        for used in sorted(set(re.findall(r"\bsm\.params\.(\w+)", text)) - params - {"get"}):
            problems.append(f"rule {name}: {Path(script).name} reads sm.params.{used}, which the rule does not set")
    assert not problems, "\n".join(problems)
