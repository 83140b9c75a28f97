"""`byoldyn plot`: draw a sweep file (a heatmap over two swept parameters with eta_c, and lines over one)."""

from __future__ import annotations

from pathlib import Path

from ..errors import check_output_file, one_line
from .common import add_out, command

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    """Add `plot` to the `byoldyn` subcommands `sub`."""
    p = sub.add_parser(
        "plot",
        help="plot a sweep: heatmap over two swept parameters (with eta_c) and lines over one",
        description="Draw a netCDF written by `byoldyn sweep`: a heatmap of the seed mean of VAR over two swept "
        "parameters (default alpha_p x eta), with the analytic collapse boundary eta_c = tau^2/(4 kappa), "
        "tau = 1 (THEORY.md 7.4) when one axis is eta, and a line plot of VAR over one parameter.",
    )
    p.add_argument("sweep", type=Path, metavar="SWEEP.nc", help="a file written by byoldyn sweep")
    p.add_argument("--var", default="collapsed", help="observable to plot (default collapsed: the collapse fraction)")
    p.add_argument("--x", default=None, help="heatmap x axis: a swept parameter or seed (default alpha_p or the "
                   "first swept parameter)")
    p.add_argument("--y", default=None, help="heatmap y axis, another than --x (default eta or the second swept "
                   "parameter)")
    add_out(p, None, "PNG to write (default: SWEEP.png beside the file)")
    command(p, run)


def run(a) -> int:
    """Run `byoldyn plot`: refuses a missing or foreign file and an unwritable --out before drawing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import xarray as xr

    from ..figures.sweeps import default_axes, plot_lines, plot_sweep
    from ..io import save_figure

    if not a.sweep.exists():
        raise ValueError(f"no such file: {str(a.sweep)!r}")
    if a.sweep.is_dir():
        raise ValueError(f"{str(a.sweep)!r} is a directory, not a sweep file")
    out = check_output_file(a.out or a.sweep.with_suffix(".png"), "--out")  # before reading and drawing
    try:
        ds = xr.open_dataset(a.sweep, engine="h5netcdf").load()
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as e:
        raise ValueError(f"cannot read {str(a.sweep)!r} as netCDF: {one_line(e)}") from None
    if "config" not in ds.attrs or "status" not in ds:
        raise ValueError(f"{str(a.sweep)!r} is not a byoldyn sweep file")
    if a.x is not None and a.x == a.y:
        raise ValueError(f"--x and --y must be two different parameters, got {a.x} for both")
    x, y = default_axes(ds)
    x, y = a.x or x, a.y or y
    if y is None or x == y:  # one swept parameter (or --x the default y): lines only
        fig, ax = plt.subplots(figsize=(6, 4.4))
        plot_lines(ds, a.var, x, ax=ax)
    else:
        fig, ax = plt.subplots(1, 2, figsize=(12, 4.6))
        plot_sweep(ds, a.var, x, y, ax=ax[0])
        plot_lines(ds, a.var, y, hue=x, ax=ax[1])
    fig.tight_layout()
    save_figure(fig, out, dpi=110)
    print(f"wrote {out}")
    return 0
