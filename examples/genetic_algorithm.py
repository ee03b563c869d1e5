"""A genetic algorithm that evolves bit strings towards all ones (OneMax).

Fitness of each generation is evaluated on the workers, one batch of individuals a task.

    python examples/genetic_algorithm.py -i local -n 2 [--generations 30] [--size 40]
"""

import argparse
import random

from pymw_admin.runtime import Master, options

GENES = 64


def fitness(individuals: list[list[int]]) -> list[int]:
    return [sum(genes) for genes in individuals]


def crossover(a: list[int], b: list[int], rng: random.Random) -> list[int]:
    cut = rng.randrange(1, GENES)
    return a[:cut] + b[cut:]


def mutate(genes: list[int], rng: random.Random, rate: float = 1.0 / GENES) -> list[int]:
    return [1 - g if rng.random() < rate else g for g in genes]


def main() -> None:
    opts = options.parse_args()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--generations", type=int, default=30)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(opts.rest)

    rng = random.Random(args.seed)
    population = [[rng.randint(0, 1) for _ in range(GENES)] for _ in range(args.size)]
    best = 0
    with Master(interface=options.interface_from_args()) as master:
        for _generation in range(args.generations):
            batches = [population[i :: args.batches] for i in range(args.batches)]
            scores_by_batch = master.map(fitness, batches)
            scored = sorted(
                ((score, genes) for batch, scores in zip(batches, scores_by_batch, strict=True)
                 for score, genes in zip(scores, batch, strict=True)),
                key=lambda pair: pair[0],
                reverse=True,
            )
            best = max(best, scored[0][0])
            parents = [genes for _score, genes in scored[: args.size // 2]]
            population = parents + [
                mutate(crossover(rng.choice(parents), rng.choice(parents), rng), rng)
                for _ in range(args.size - len(parents))
            ]
    print(f"best fitness {best} of {GENES} after {args.generations} generations")


if __name__ == "__main__":
    main()
