"""Flow-matching sampling as an SDE with a Gaussian log-prob per step (Flow-GRPO's construction), pure tensors.

Rectified flow: x_t = (1 - t) x_0 + t eps, velocity v = eps - x_0, t from 1 (noise) to 0 (image). The ODE step
x + v dt (dt < 0) becomes an SDE with the same marginals by adding the score term and noise:
    mean = x + [v + s_t^2 / (2t) (x + (1 - t) v)] dt,   std = s_t sqrt(-dt),   s_t = a sqrt(t / (1 - t)),
with `a` the noise level (t = 1 in s_t is replaced by the schedule's largest t below 1). Each step's log-prob
is the Gaussian log-density of the step taken, averaged over the latent's elements (the per-step "token" of
GRPO's ratio for flow models).
"""

from __future__ import annotations

import math

import torch


def noise_scale(t: float, t_cap: float, level: float) -> float:
    """s_t = level * sqrt(t / (1 - t)), with t capped below 1 (at t = 1 the formula diverges)."""
    return level * math.sqrt(t / (1 - min(t, t_cap)))


def sde_mean_std(x: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float, t_cap: float,
                 level: float) -> tuple[torch.Tensor, float]:
    """Mean and standard deviation of the SDE step from t to t_next < t."""
    dt = t_next - t
    s = noise_scale(t, t_cap, level)
    mean = x + (velocity + s * s / (2 * t) * (x + (1 - t) * velocity)) * dt
    return mean, s * math.sqrt(-dt)


def gaussian_logprob(x_next: torch.Tensor, mean: torch.Tensor, std: float) -> torch.Tensor:
    """log N(x_next; mean, std^2) per element, averaged over every dimension but the first: (B,)."""
    lp = -((x_next.float() - mean.float()) ** 2) / (2 * std * std) - math.log(std) - 0.5 * math.log(2 * math.pi)
    return lp.flatten(1).mean(1)


def sde_step(x: torch.Tensor, velocity: torch.Tensor, t: float, t_next: float, t_cap: float, level: float,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One sampled step: (x_next, its log-prob (B,))."""
    mean, std = sde_mean_std(x, velocity, t, t_next, t_cap, level)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_next = mean + std * noise
    return x_next, gaussian_logprob(x_next, mean, std)


def guided_velocity(cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free guidance on velocities, the same in sampling and in the training log-prob."""
    return uncond + guidance * (cond - uncond)


def sample_trajectory(velocity, x: torch.Tensor, times: list[float], t_cap: float, level: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """SDE steps from times[0] (noise) to times[-1] with `velocity(x, t)`: the trajectory (N, S + 1, ...) and every
    step's log-prob (N, S)."""
    path, logprobs = [x], []
    for i in range(len(times) - 1):
        x, lp = sde_step(x, velocity(x, times[i]), times[i], times[i + 1], t_cap, level, generator)
        path.append(x)
        logprobs.append(lp)
    return torch.stack(path, 1), torch.stack(logprobs, 1)


def trajectory_logprobs(velocity, trajectory: torch.Tensor, times: list[float], steps: list[int], t_cap: float,
                        level: float) -> torch.Tensor:
    """Teacher-forced log-probs (with grad, through `velocity`) of the `steps` of a recorded trajectory: (N, len)."""
    out = []
    for i in steps:
        mean, std = sde_mean_std(trajectory[:, i].float(), velocity(trajectory[:, i], times[i]), times[i],
                                 times[i + 1], t_cap, level)
        out.append(gaussian_logprob(trajectory[:, i + 1], mean, std))
    return torch.stack(out, 1)
