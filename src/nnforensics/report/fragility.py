"""The report of a synaptic-filtering sweep: figures, tables and a page that says which layers are what.

``write_fragility_report(results_dir)`` writes into the results directory::

    curves-<model>-local-<filter>.png     accuracy against the normalised threshold, a panel per layer
    curves-<model>-global.png             the same for every layer filtered together, a panel per filter
    scores-<model>-<scope>.png            layers x filters heatmap of scores, coloured by verdict
    scores-by-epoch-<scope>.png           score against epoch (several epochs only)
    report.html                           all of the above, self-contained

Heatmaps are drawn for at most :data:`MAX_MODELS_DRAWN` models (the last epoch of each
run first), curves for the first of them; the tables cover every model.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from ..errors import ConfigError
from ..experiments.fragility import write_scores
from ..experiments.sweep import ResultsDir
from ..fragility.scores import DEFAULT_TOLERANCE, RULE
from .fragility_plots import plot_curves, plot_score_heatmap, plot_scores_by_epoch
from .html import Bullets, Image, KeyValues, Paragraph, Section, write_html
from .plots import save_figure
from .tables import Table, fmt_num

MAX_MODELS_DRAWN = 3


def _png(fig: Figure, path: Path) -> Image:
    save_figure(fig, path)
    return Image(path.read_bytes(), path.stem)


def _slug(text: object) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def _drawn_models(verdicts: pd.DataFrame) -> list[str]:
    """Models to draw: the last epoch of each run first, then the others, at most MAX_MODELS_DRAWN."""
    models = verdicts.drop_duplicates("model")
    if "epoch" in models.columns and models["epoch"].notna().any():
        last = models.sort_values("epoch").groupby("run", sort=False).tail(1)
        order = list(last["model"]) + [m for m in models["model"] if m not in set(last["model"])]
    else:
        order = list(models["model"])
    return order[:MAX_MODELS_DRAWN]


def _names(layers: list[str], most: int = 12) -> str:
    return ", ".join(layers[:most]) + (f" and {len(layers) - most} more" if len(layers) > most else "")


def findings(verdicts: pd.DataFrame, scope: str) -> list[str]:
    """Sentences: per verdict, the layers that got it (majority over models, with agreement when several)."""
    part = verdicts[(verdicts["scope"] == scope) & verdicts["verdict"].notna()]
    if part.empty:
        return []
    n_models = part["model"].nunique()
    lines = []
    for verdict in ("fragile", "robust", "antifragile"):
        layers = []
        for layer, group in part.groupby("layer", sort=False):
            counts = group["verdict"].value_counts()
            if counts.index[0] == verdict:
                share = counts.iloc[0] / len(group)
                layers.append(layer if n_models == 1 else f"{layer} ({share:.0%})")
        what = {"fragile": "removing their weights costs more accuracy than the share removed",
                "robust": "accuracy tracks or stays above the share of weights kept",
                "antifragile": "removing some of their weights improves on the intact model"}[verdict]
        lines.append(f"{verdict.capitalize()} ({what}): {_names(layers) if layers else 'none'}.")
    if "reset" in part.columns and part["reset"].notna().any():
        for label, what in (("ambient", "survive"), ("critical", "do not survive")):
            layers = [layer for layer, group in part.groupby("layer", sort=False)
                      if group["reset"].value_counts().index[0] == label]
            lines.append(f"Reset to initialisation, {label} (layers that {what} being reset to their initial weights, "
                         f"keeping at least 90 % of the intact clean accuracy): {_names(layers) if layers else 'none'}.")
    if n_models > 1:
        lines.append(f"Over {n_models} models; a percentage is the share of models that agree with the "
                     f"layer's most frequent verdict.")
    return lines


def _stability(verdicts: pd.DataFrame, scope: str) -> Table | None:
    """Per layer: verdicts counted over models, per epoch (initialisations x epochs)."""
    part = verdicts[(verdicts["scope"] == scope) & verdicts["verdict"].notna()]
    if part["model"].nunique() < 2:
        return None
    by = "epoch" if "epoch" in part.columns and part["epoch"].nunique() > 1 else None
    columns = ["layer"] + ([f"epoch {float(e):g}" for e in sorted(part[by].unique())] if by else ["models"])
    rows = []
    for layer, group in part.groupby("layer", sort=False):
        cells = []
        for _, sub in (sorted(group.groupby(by)) if by else [(None, group)]):
            counts = sub["verdict"].value_counts()
            cells.append(", ".join(f"{v} {c}/{len(sub)}" for v, c in counts.items()))
        rows.append([layer, *cells])
    return Table(columns, rows, title=f"Verdicts across models ({scope} analysis)",
                 note="Each cell counts the verdicts of the models (initialisations) at that epoch.")


def _score_table(scores: pd.DataFrame, model: str, scope: str) -> Table:
    part = scores[(scores["model"] == model) & (scores["scope"] == scope)]
    rows = [[r["layer"], r["filter"], fmt_num(r["score_clean"], 3), fmt_num(r["score_adv"], 3),
             fmt_num(r["score_diff"], 3), fmt_num(r["gain_clean"], 3), fmt_num(r["gain_adv"], 3),
             r["verdict"], r["confidence"]] for _, r in part.iterrows()]
    return Table(["layer", "filter", "score clean", "score adv", "adv - clean", "gain clean", "gain adv", "verdict",
                  "confidence"], rows, title=f"Scores of {model} ({scope})")


def _curve_figures(rows: pd.DataFrame, model: str, scope: str, filters: list[str], out: Path) -> list[Image]:
    """Local: a figure per filter, a panel per layer. Global: one figure, a panel per filter."""
    if rows.empty:
        return []
    if scope == "global":
        return [_png(plot_curves(rows.assign(layer=rows["filter"]), f"{model}: every layer filtered together"),
                     out / f"curves-{_slug(model)}-global.png")]
    return [_png(plot_curves(rows[rows["filter"] == kind], f"{model}: {kind} filter, {scope} analysis"),
                 out / f"curves-{_slug(model)}-{scope}-{kind}.png") for kind in filters if (rows["filter"] == kind).any()]


def _settings(config: dict) -> dict:
    attack = "none" if config.get("attack") == "none" else (
        f"{config.get('attack')} eps={config.get('eps')} {config.get('attack_args') or ''}".strip())
    return {"models": len(config.get("models", [])), "data": f"{config.get('data')} ({config.get('split')}, "
            f"{config.get('limit_eval') or 'all'} images)", "filters": ", ".join(config.get("filters", [])),
            "scopes": ", ".join(config.get("scopes", [])), "thresholds": config.get("thresholds"),
            "attack on inputs": attack, "adversarial inputs": config.get("adversarial"),
            "verdict tolerance": config.get("tolerance", DEFAULT_TOLERANCE)}


def write_fragility_report(results_dir: str | os.PathLike) -> Path:
    """Write the figures and ``report.html`` of a fragility sweep; returns the page's path."""
    store = ResultsDir(results_dir)
    config = store.read_config()
    if not config or config.get("kind") != "fragility":
        raise ConfigError(f"{str(results_dir)!r} holds no synaptic-filtering results (nnf fragility writes them)")
    scores, verdicts = write_scores(store.path)
    if scores.empty:
        raise ConfigError(f"{str(results_dir)!r} has no finished cells yet")
    curves = store.consolidate()
    out = store.path
    intro = Paragraph(
        "Synaptic filtering removes the weights of a layer (local analysis) or of every layer at once (global) "
        "below, above or around a threshold, and measures clean and adversarial accuracy at each threshold. "
        "Accuracies are divided by the intact model's; thresholds are normalised to [0, 1].")
    sections = [Section("Settings", [intro, KeyValues(_settings(config))])]
    for scope in config["scopes"]:
        parts: list = [Bullets(findings(verdicts, scope))]
        stability = _stability(verdicts, scope)
        if stability is not None:
            parts.append(stability)
        by_epoch = plot_scores_by_epoch(scores[scores["scope"] == scope])
        if by_epoch is not None:
            parts.append(_png(by_epoch, out / f"scores-by-epoch-{scope}.png"))
        for rank, model in enumerate(_drawn_models(verdicts[verdicts["scope"] == scope])):
            model_scores = scores[(scores["model"] == model) & (scores["scope"] == scope)]
            magnitude = model_scores[model_scores["filter"] != "reset"]  # reset reads ambient / critical
            sub: list = [_png(plot_score_heatmap(magnitude, f"{model}, {scope} analysis"),
                              out / f"scores-{_slug(model)}-{scope}.png")]
            if rank == 0:  # curves of the representative model only: a figure per filter is many panels
                sub += _curve_figures(curves[(curves["model"] == model) & (curves["scope"] == scope)], model, scope,
                                      config["filters"], out)
            sub.append(_score_table(scores, model, scope))
            parts.append(Section(f"{model}", sub))
        sections.append(Section(f"{scope.capitalize()} analysis", parts))
    sections.append(Section("How verdicts are decided", [
        Paragraph(RULE),
        Bullets(["score: mean over the normalised threshold of (accuracy / intact accuracy - share of weights kept)",
                 "gain: mean over the threshold of max(accuracy / intact accuracy - 1, 0)",
                 "confidence: high when the deciding number is farther from the tolerance than three standard errors of "
                 "one accuracy measurement on the evaluation images",
                 "adversarial inputs 'fixed' are crafted once on the intact model: a filtered model then faces a "
                 "transfer attack, which alone can raise its adversarial accuracy; 'adaptive' re-crafts them"])]))
    return write_html(out / "report.html", "Synaptic filtering: fragile, robust and antifragile layers", sections,
                      subtitle=f"{len(config['models'])} model(s) on {config['data']}")
