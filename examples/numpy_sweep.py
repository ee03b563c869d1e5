"""A parameter sweep with numpy: each task simulates a damped oscillator for one damping ratio
and returns its trajectory (a float64 array) and the mean energy (a numpy scalar).

    python examples/numpy_sweep.py -i local -n 2 [--points 12] [--steps 10000]

Arrays and numpy scalars go in and come back as themselves on every interface, volunteers'
results included (docs/runtime-guide.md: what a volunteer's result may hold).
"""

import argparse

import numpy as np

from pymw_admin.runtime import Master, options


def oscillate(zeta: float, times: np.ndarray) -> tuple[np.ndarray, np.float64]:
    """x(t) of an oscillator with damping ratio zeta (natural frequency 1), and its mean energy."""
    import numpy as np  # the worker imports what the function uses

    omega_d = np.sqrt(max(1.0 - zeta**2, 1e-12))
    x = np.exp(-zeta * times) * np.cos(omega_d * times)
    v = np.gradient(x, times)
    energy = 0.5 * (x**2 + v**2)
    return x, np.mean(energy)


def main() -> None:
    opts = options.parse_args()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=12)
    parser.add_argument("--steps", type=int, default=10_000)
    args = parser.parse_args(opts.rest)

    times = np.linspace(0.0, 50.0, args.steps)  # one array, sent with every task
    zetas = np.linspace(0.01, 0.6, args.points)
    with Master(interface=options.interface_from_args()) as master:
        results = list(master.map(oscillate, [float(z) for z in zetas], [times] * args.points))
    curves = np.stack([curve for curve, _ in results])
    energies = np.array([energy for _, energy in results])
    assert curves.shape == (args.points, args.steps) and curves.dtype == np.float64
    assert all(isinstance(energy, np.floating) for _, energy in results)
    # the lightest damping keeps the most energy; each curve starts at x = 1
    falls = "monotonically" if np.all(np.diff(energies) < 0) else "NOT monotonically"
    print(f"{args.points} damping ratios, {args.steps} steps each: trajectories {curves.shape} "
          f"{curves.dtype}, start {curves[:, 0].min():.3f}..{curves[:, 0].max():.3f}, mean "
          f"energy falls {falls} from {energies[0]:.4f} to {energies[-1]:.4f}")


if __name__ == "__main__":
    main()
