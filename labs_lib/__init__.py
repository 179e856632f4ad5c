"""labs_lib: the small library behind the Flow Matching & Diffusion Labs.

It grows with the course, chapter by chapter:

=====================  ==========================================================
module                 what it holds
=====================  ==========================================================
``config``             device choice and the seeding helper
``distributions``      ``Sampleable``, ``Density``, Gaussian, Gaussian mixture, toy 2-D data with densities
``dynamics``           ``ODE``, ``SDE``, linear ODE, Brownian motion, OU, Langevin
``simulators``         Euler, Heun, Euler–Maruyama, recorded trajectories
``paths``              schedules, affine/Gaussian paths, exact Gaussian-mixture marginals
``diffusion``          the VP forward SDE and DDPM chain, DDPM/DDIM/DPM-Solver++(2M) samplers, step schedules
``models``             MLP fields taking ``(x, t)`` (and a label, for guidance)
``unet``               a small U-Net for label-conditioned fields on images
``dit``                a small diffusion transformer: patchify, sine-cosine positions, adaLN-Zero blocks
``autoencoder``        an autoencoder / VAE (convolutional or dense), latent normalisation, latent data for a flow
``digits``             labelled image data: scikit-learn's 8×8 digits (``mnist``: optional MNIST)
``guidance``           guided path samples, the classifier-free guidance field and sampler
``digit_metrics``      held-out classifier accuracy, W2 to real digits, memorization check
``times``              the two ways a time is shaped against a batch (broadcast, per sample)
``losses``             every training loss, one calling convention: ``loss(model, path, x_0, x_1, t, ...)``
``training``           trainers with progress bars and loss history: CFM (independent or OT-coupled), DSM,
                       ε-prediction, CFG, reflow, autoencoder
``metrics``            W2 (and its optimal assignment), energy distance, MMD, and their noise floors
``likelihood``         the instantaneous change of variables: exact and Hutchinson divergence, log-likelihood
``coupling``           minibatch optimal-transport coupling, reflow pairs, straightness and one-step error of a flow
``poisson``            Poisson flow (PFGM): the field of the data as charges, its prior and backward ODE
``yardstick``          calibrated sample-quality verdicts for targets with an exact density
``wrong_samplers``     samplers wrong on purpose: the catalogue the verdicts must reject
``plotting``           densities, samples, vector fields, trajectories, animations
``checks``             one checker per exercise
``authoring``          the course tooling, apart from the math: student-notebook generator, Colab front
                       matter, slide types, course-map figures, headless execution
=====================  ==========================================================
"""

from .autoencoder import (Autoencoder, AutoencoderOutput, LatentImages, autoencoder_loss, gaussian_kl,
                          generate_latent_guided, reconstruction_mse)
from .config import get_device, seed_everything
from .coupling import FixedPairs, one_step_error, ot_coupling, reflow_pairs, straightness
from .diffusion import (NFE_SAMPLERS, DDIMSimulator, DDPMSimulator, DPMSolverPP2M, VPForwardSDE, data_prediction,
                        ddpm_alpha_bars, ddpm_forward_step, ddpm_posterior, ddpm_step_coefficients, dpmpp_2m_step,
                        karras_time_grid, log_snr_time_grid, power_time_grid, prediction_to_score,
                        probability_flow_ode, samplers_at_nfe, uniform_time_grid, validate_vp_scheduler,
                        vp_reverse_sde)
from .digits import Digits, LabelledImages, load_digits_split
from .distributions import (Checkerboard, Circles, Density, Gaussian, GaussianMixture, LabelledSampleable, Moons,
                            Sampleable)
from .dit import DiT, modulate, patchify, sincos_position_embedding, unpatchify
from .dynamics import (ODE, SDE, BrownianMotion, LangevinCorrectedSDE, LangevinSDE, LinearODE, OrnsteinUhlenbeck,
                       VectorFieldODE)
from .guidance import CFGVectorField, GuidedPathSample, generate_guided, sample_guided_path
from .interpolation import slerp
from .likelihood import divergence, hutchinson_divergence, log_likelihood, standard_normal_log_density
from .losses import cfg_loss, cfm_loss, dsm_loss, noise_prediction_loss
from .metrics import (autocorrelation, distance_curve, energy_distance, loglog_slope, mmd_rbf, noise_floor,
                      optimal_assignment, sample_quality, wasserstein2)
from .models import LabelledMLPField, MLPField, null_label_of
from .paths import (AffinePath, CondOTScheduler, CosineScheduler, GaussianMixturePath, PathSample, Scheduler,
                    SchedulerOutput, SqrtScheduler)
from .poisson import PoissonFlowODE, poisson_field, poisson_prior, poisson_sample, poisson_time_grid
from .simulators import (EulerMaruyamaSimulator, EulerSimulator, HeunSimulator, ODESimulator, SDESimulator, Simulator,
                         Trajectory, time_grid)
from .times import batch_times, expand_time
from .training import (AutoencoderTrainer, CFGTrainer, ConditionalFlowMatchingTrainer, DenoisingScoreMatchingTrainer,
                       NoisePredictionTrainer, OTConditionalFlowMatchingTrainer, ReflowTrainer, Trainer,
                       TrainingHistory, cfm_training_loop, logit_normal_times, uniform_times)
from .unet import UNet
from .yardstick import QualityReport, Yardstick

__version__ = "0.1.0"

__all__ = [
    "get_device", "seed_everything",
    "Sampleable", "Density", "Gaussian", "GaussianMixture", "Moons", "Circles", "Checkerboard",
    "ODE", "SDE", "LinearODE", "BrownianMotion", "OrnsteinUhlenbeck", "LangevinSDE", "VectorFieldODE",
    "expand_time", "batch_times",
    "Scheduler", "SchedulerOutput", "CondOTScheduler", "SqrtScheduler", "CosineScheduler", "AffinePath",
    "PathSample", "GaussianMixturePath", "MLPField", "null_label_of", "Trainer", "TrainingHistory",
    "uniform_times", "logit_normal_times",
    "ConditionalFlowMatchingTrainer", "cfm_training_loop",
    "DenoisingScoreMatchingTrainer", "NoisePredictionTrainer", "CFGTrainer", "LangevinCorrectedSDE",
    "cfm_loss", "dsm_loss", "noise_prediction_loss", "cfg_loss",
    "Simulator", "ODESimulator", "SDESimulator", "EulerSimulator", "HeunSimulator",
    "EulerMaruyamaSimulator", "Trajectory", "time_grid",
    "wasserstein2", "energy_distance", "loglog_slope", "mmd_rbf", "noise_floor", "sample_quality",
    "autocorrelation", "distance_curve", "Yardstick", "QualityReport",
    "Digits", "LabelledImages", "LabelledSampleable", "load_digits_split", "LabelledMLPField", "UNet",
    "CFGVectorField", "GuidedPathSample", "generate_guided", "sample_guided_path",
    "DiT", "patchify", "unpatchify", "sincos_position_embedding", "modulate",
    "Autoencoder", "AutoencoderOutput", "AutoencoderTrainer", "LatentImages", "autoencoder_loss", "gaussian_kl",
    "reconstruction_mse", "generate_latent_guided",
    "VPForwardSDE", "validate_vp_scheduler", "ddpm_alpha_bars", "ddpm_step_coefficients", "ddpm_forward_step",
    "prediction_to_score", "probability_flow_ode", "vp_reverse_sde", "data_prediction", "ddpm_posterior",
    "dpmpp_2m_step", "DDIMSimulator", "DDPMSimulator", "DPMSolverPP2M",
    "uniform_time_grid", "power_time_grid", "log_snr_time_grid", "karras_time_grid", "NFE_SAMPLERS", "samplers_at_nfe",
    "divergence", "hutchinson_divergence", "log_likelihood", "standard_normal_log_density",
    "optimal_assignment", "ot_coupling", "OTConditionalFlowMatchingTrainer", "straightness", "one_step_error",
    "FixedPairs", "reflow_pairs", "ReflowTrainer",
    "poisson_field", "poisson_prior", "PoissonFlowODE", "poisson_time_grid", "poisson_sample", "slerp",
]
