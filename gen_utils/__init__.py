"""gen_utils — shared plumbing for *Generative AI from First Principles*.

Only what more than one chapter needs lives here (data, tokenisation and batching, the
training loop, plotting, metrics, profiles/device/seeding, results); each model is written
out in the chapter that teaches it, and later chapters import it from the module generated
from that chapter's notebook (``gen_utils.chapters.chNN_topic``, see ``gen_utils.export``).
"""

from .checkpoint import CheckpointError
from .config import Config, config
from .copying import CopyTest, CopyTestReference, copy_test, kmeans, mann_whitney_z, nearest_distances
from .corpora import load_multi30k, load_shakespeare, shakespeare_split
from .data import ChecksumError, DatasetNotFoundError, data_root, dataset_file
from .decoding import (
    Hypothesis,
    beam_search,
    greedy_search,
    repetition_penalty_logits,
    sample,
    sample_next,
    top_k_logits,
    top_p_logits,
)
from .diffusion import (
    Schedule,
    cosine_betas,
    ddim_sample,
    ddpm_sample,
    guided_eps,
    linear_betas,
    posterior_mean_var,
    predict_x0,
    q_sample,
    q_step,
    sample_timesteps,
)
from .feature_metrics import inception_score, kid, mmd2_unbiased, polynomial_kernel
from .fid import (
    fid_from_features,
    fit_fid_infinity,
    frechet_distance,
    gaussian_stats,
    label_accuracy,
    mnist_fid,
    mnist_fid_floor,
)
from .likelihood import (
    importance_sampled_log_likelihood,
    importance_sampled_log_likelihood_chunked,
)
from .manifold import PRDC, knn_radii, prdc
from .metrics import (
    bits_per_dim,
    bits_to_nats,
    corpus_bleu,
    log_mean_exp,
    nats_to_bits,
    perplexity,
)
from .mnist import Batches, binarize_dynamic, from_pm1, load_mnist, to_pm1, to_unit
from .mnist_classifier import classifier_outputs, load_mnist_classifier
from .plot import COLORS, heatmap, image_grid, loss_curves, scatter_2d, smooth
from .precision import Precision, choose_precision
from .ring import Ring
from .runtime import (
    PROFILES,
    current_profile,
    dry_run,
    finish,
    glue,
    headless,
    pick,
    resolve_profile,
    run,
    seed_everything,
    setup,
)
from .significance import PairedBootstrap, paired_bootstrap, score_from_stats, sentence_stats
from .text import (
    CharTokenizer,
    Padded,
    WordVocab,
    lm_windows,
    pad_sequences,
    seq2seq_batches,
    word_tokenize,
)
from .train import (
    NonFiniteLossError,
    TrainResult,
    autocast,
    forever,
    load_checkpoint,
    save_checkpoint,
    train,
)
from .translation import (
    TranslationData,
    detokenize,
    load_translation_data,
    lowercase_bleu,
    translate,
)
from .version import __version__
from .widgets import explore, live_kernel

__all__ = [
    "__version__",
    "PROFILES", "setup", "pick", "config", "Config", "current_profile", "finish", "glue", "run", "headless",
    "Precision", "choose_precision", "dry_run",
    "resolve_profile", "seed_everything",
    "data_root", "dataset_file", "DatasetNotFoundError", "ChecksumError",
    "load_mnist", "to_unit", "to_pm1", "from_pm1", "binarize_dynamic", "Batches",
    "load_shakespeare", "shakespeare_split", "load_multi30k",
    "CharTokenizer", "WordVocab", "word_tokenize", "Padded", "pad_sequences", "seq2seq_batches",
    "lm_windows",
    "greedy_search", "beam_search", "Hypothesis",
    "top_k_logits", "top_p_logits", "repetition_penalty_logits", "sample_next", "sample",
    "TranslationData", "load_translation_data", "detokenize", "lowercase_bleu", "translate",
    "train", "forever", "TrainResult", "CheckpointError", "NonFiniteLossError", "autocast",
    "save_checkpoint", "load_checkpoint",
    "image_grid", "loss_curves", "scatter_2d", "heatmap", "smooth", "COLORS",
    "explore", "live_kernel",
    "nats_to_bits", "bits_to_nats", "bits_per_dim", "perplexity", "log_mean_exp", "corpus_bleu",
    "importance_sampled_log_likelihood", "importance_sampled_log_likelihood_chunked",
    "load_mnist_classifier", "classifier_outputs", "mnist_fid", "mnist_fid_floor", "label_accuracy",
    "frechet_distance", "gaussian_stats", "fid_from_features",
    "Ring",
    "kid", "mmd2_unbiased", "polynomial_kernel", "inception_score", "fit_fid_infinity",
    "PRDC", "prdc", "knn_radii",
    "CopyTest", "CopyTestReference", "copy_test", "kmeans", "mann_whitney_z", "nearest_distances",
    "PairedBootstrap", "paired_bootstrap", "sentence_stats", "score_from_stats",
    "Schedule", "linear_betas", "cosine_betas", "sample_timesteps", "q_sample", "q_step",
    "posterior_mean_var", "predict_x0", "guided_eps", "ddpm_sample", "ddim_sample",
]
