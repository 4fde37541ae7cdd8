"""The table of every profile's settings, made from the profile values themselves (docs/profiles.md shows it;
``python scripts/docs_tables.py`` writes it there and a test checks that it is current)."""

from __future__ import annotations

from dataclasses import fields

from reflrp import conventions, rules

#: The rules a table row is made for, in the order of docs/rules.md.
RULES = (rules.Epsilon, rules.ZPlus, rules.AlphaBeta, rules.Gamma, rules.ZBox, rules.Flat, rules.WSquare, rules.Norm,
         rules.Gradient, rules.Pass, rules.WinnerTakesAll)


def _types(key):
    return key if isinstance(key, str) else ", ".join(t.__name__ for t in key)


def _settings(pairs):
    return ", ".join(f"`{k}={v!r}`" for k, v in pairs)


def _first(first):
    if first.which == "none":
        return "none"
    what = _types(first.types) if first.types else "layers that combine features"
    through = _types(first.look_through) if first.look_through is not None else "any other layer"
    return f"{'the first of the' if first.which == 'first' else 'every one of the'} {what} reached from the input " \
           f"through {through}"


def _reading(profile, kind):
    if profile.reads is None:
        return "as given"
    found = [r for r in profile.reads if r.rule is kind]
    if not found:
        return "— (the library has none)"
    parts = []
    for reading in found:
        text = reading.name
        if reading.required:
            text += f" (when {_settings(reading.required)})"
        if reading.fixed:
            text += f": {_settings(reading.fixed)}"
        if reading.condition is not None:
            text += f"; {(reading.condition.__doc__ or reading.condition.__name__).strip()}"
        parts.append(text)
    return "; ".join(parts)


def _setting(value):
    if isinstance(value, tuple) and value and all(callable(v) for v in value):  # canonizers, by name
        return "(" + ", ".join(v.__name__ for v in value) + ",)"
    return repr(value)


def _variant(default, variant):
    changed = [f"`{f.name}={_setting(getattr(variant, f.name))}`" for f in fields(variant)
               if f.name != "options" and getattr(variant, f.name) != getattr(default, f.name)]
    return f"{variant}: {', '.join(changed)}"


def profiles_markdown():
    """Every registered profile's settings as a markdown table: one column per profile, one row per setting."""
    profiles = [conventions.variants(name) for name in conventions.names()]
    defaults = [variants[0] for variants in profiles]
    rows = [
        ("library", [p.library for p in defaults]),
        ("`seed`", [f"`{p.seed}`" for p in defaults]),
        ("`batchnorm` (before explaining)", [f"`{p.batchnorm}`" for p in defaults]),
        ("`batchnorm_parameters` (every rule)", [f"`{p.batchnorm_parameters}`" for p in defaults]),
        ("first layers", [_first(p.first) for p in defaults]),
        ("`single_rule`: a rule given alone covers", [{"all": "every layer it applies to",
                                                      "weights": "the layers with weights"}[p.single_rule]
                                                     for p in defaults]),
        ("layers the composite leaves open", ["; ".join(f"{_types(k)}: `{r}`" for k, r in p.defaults)
                                              for p in defaults]),
        *((f"`{kind.__name__}` given by the user", [_reading(p, kind) for p in defaults]) for kind in RULES),
        ("presets", [", ".join(f"`{name}`" for name, _ in p.presets) or "—" for p in defaults]),
        ("reflrp's named composites", [", ".join(f"`{c.__name__}` as `{name}`" for c, name in p.named)
                                       or "reflrp's own" for p in defaults]),
        ("other settings", ["<br>".join(_variant(v[0], other) for other in v[1:]) or "—" for v in profiles]),
    ]
    lines = ["| setting | " + " | ".join(f"`{p.name}`" for p in defaults) + " |",
             "|---|" + "---|" * len(defaults)]
    lines += [f"| {label} | " + " | ".join(cell.replace("|", "&#124;") for cell in cells) + " |"
              for label, cells in rows]
    return "\n".join(lines) + "\n"


__all__ = ["profiles_markdown"]
