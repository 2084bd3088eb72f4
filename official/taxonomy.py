"""The garden's taxonomy: the applications survey's domains and tasks, and
the catalogue of every paper the garden covers.

Islam et al., "A Comprehensive Survey on Applications of Transformers for
Deep Learning Tasks" (arXiv 2306.07303, ESWA 2024) organises transformer
models by five application domains -- natural language processing, computer
vision, multi-modality, audio and speech, signal processing -- and, inside
each, by task. The garden uses that as its registry taxonomy:

* every registered model carries the tags `domain` (one of `DOMAINS`),
  `task` (one of that domain's tasks), `modality` (one of `MODALITIES`),
  `family` (the garden's paper family, `FAMILIES`) and `paper` (a slug of
  `CATALOGUE`); optional `efficiency` lists the attention kernels /
  inference techniques the model demonstrates (the survey's cross-cutting
  efficiency axis). `validate_tags` checks them; the sweep runs it on every
  registered model (`tests/test_taxonomy.py`);
* `CATALOGUE` lists every paper: title, arXiv id, year, primary domain and
  task, family. `catalogue_table()` renders it with the registered models
  of each paper (or "catalogued" where none is implemented yet).

The survey's own sub-task names are not reproduced verbatim (unverified);
the task lists below follow its domains with the tasks the garden's papers
need. This module imports neither TensorFlow nor Keras, so
`import official.taxonomy` is cheap (tested).
"""

DOMAINS = {
    "nlp": {
        "title": "Natural language processing",
        "tasks": ("language-modeling", "text-classification",
                  "long-sequence-classification", "in-context-learning",
                  "sequence-modeling"),
    },
    "vision": {
        "title": "Computer vision",
        "tasks": ("image-classification", "masked-image-modeling",
                  "self-supervised-learning", "point-cloud-pretraining",
                  "point-cloud-classification", "image-generation",
                  "density-estimation", "image-tokenization", "inpainting",
                  "novel-view-synthesis", "3d-generation",
                  "anomaly-detection", "video-generation",
                  "video-anomaly-detection", "interpretability",
                  "dense-prediction"),
    },
    "multimodal": {
        "title": "Multi-modality",
        "tasks": ("scene-graph-to-image", "visual-chat", "text-to-motion",
                  "motion-text-alignment", "robot-policy",
                  "interpretability"),
    },
    "audio": {
        "title": "Audio and speech processing",
        "tasks": ("music-generation", "keyword-spotting"),
    },
    "signal": {
        "title": "Signal processing",
        "tasks": ("eeg-denoising", "weather-forecasting", "motion-generation",
                  "sequence-modeling", "function-approximation"),
    },
}

MODALITIES = ("text", "image", "point_cloud", "video", "audio", "eeg",
              "motion", "weather", "tokens", "multi", "state")

FAMILIES = ("vision-ssl", "generative", "signal-motion-sequence",
            "efficient-attention")

REQUIRED_TAGS = ("domain", "task", "modality", "family", "paper")


def _entry(slug, title, arxiv, year, domain, task, family):
    return {"slug": slug, "title": title, "arxiv": arxiv, "year": year,
            "domain": domain, "task": task, "family": family}


# slug -> paper. Primary domain / task of the paper (a paper's models may
# have other tasks, e.g. a pre-trainer and its classifier).
CATALOGUE = {e["slug"]: e for e in (
    _entry("mae", "Masked Autoencoders Are Scalable Vision Learners",
           "2111.06377", 2021, "vision", "masked-image-modeling",
           "vision-ssl"),
    _entry("point_mae", "Masked Autoencoders for Point Cloud Self-supervised "
           "Learning", "2203.06604", 2022, "vision",
           "point-cloud-pretraining", "vision-ssl"),
    _entry("memmc_mae", "Unsupervised Anomaly Detection in Medical Images "
           "with a Memory-augmented Multi-level Cross-attentional Masked "
           "Autoencoder", "2203.11725", 2022, "vision",
           "anomaly-detection", "vision-ssl"),
    _entry("mp3", "Position Prediction as an Effective Pretraining Strategy",
           "2207.07611", 2022, "vision", "self-supervised-learning",
           "vision-ssl"),
    _entry("cha_mae_vit", "ChA-MAEViT: Unifying Channel-Aware Masked "
           "Autoencoders and Multi-Channel Vision Transformers",
           "2503.19331", 2025, "vision",
           "self-supervised-learning", "vision-ssl"),
    _entry("sit", "SiT: Self-supervised vIsion Transformer", "2104.03602",
           2021, "vision", "self-supervised-learning", "vision-ssl"),
    _entry("tnt", "Transformer in Transformer", "2103.00112", 2021,
           "vision", "image-classification", "vision-ssl"),
    _entry("ia_red2", "IA-RED2: Interpretability-Aware Redundancy Reduction "
           "for Vision Transformers", "2106.12620", 2021, "vision",
           "image-classification", "vision-ssl"),
    _entry("vit_resnas", "Searching for Efficient Multi-Stage Vision "
           "Transformers (ViT-ResNAS)", "2109.00642", 2021, "vision",
           "image-classification", "vision-ssl"),
    _entry("attention_analytics", "How Does Attention Work in Vision "
           "Transformers? A Visual Analytics Attempt", "2303.13731", 2023,
           "vision", "interpretability", "vision-ssl"),
    _entry("nvist", "NViST: In the Wild New View Synthesis from a Single "
           "Image with Transformers", "2312.08568", 2024, "vision",
           "novel-view-synthesis", "vision-ssl"),
    _entry("sg2im_transformer", "Transformer-based image generation from "
           "scene graphs", "2303.04634", 2023, "multimodal",
           "scene-graph-to-image", "generative"),
    _entry("rae", "Diffusion Transformers with Representation Autoencoders",
           "2510.11690", 2025, "vision", "image-generation", "generative"),
    _entry("ladcast", "LaDCast: A Latent Diffusion Model for Medium-Range "
           "Ensemble Weather Forecasting", "2506.09193", 2025, "signal",
           "weather-forecasting", "generative"),
    _entry("atvc", "Accountable Textual-Visual Chat", "2303.05983", 2023,
           "multimodal", "visual-chat", "generative"),
    _entry("put", "Reduce Information Loss in Transformers for Pluralistic "
           "Image Inpainting (PUT)", "2205.05076", 2022, "vision",
           "inpainting", "generative"),
    _entry("vitok", "Learnings from Scaling Visual Tokenizers for "
           "Reconstruction and Generation (ViTok)", "2501.09755", 2025,
           "vision", "image-tokenization", "generative"),
    _entry("arlon", "ARLON: Boosting Diffusion Transformers with "
           "Autoregressive Models for Long Video Generation", "2410.20502",
           2024,
           "vision", "video-generation", "generative"),
    _entry("ace_step", "ACE-Step: A Step Towards Music Generation "
           "Foundation Model", "2506.00045", 2025, "audio",
           "music-generation", "generative"),
    _entry("mar3d", "MAR-3D: Progressive Masked Auto-regressor for "
           "High-Resolution 3D Generation", "2503.20519", 2025, "vision",
           "3d-generation", "generative"),
    _entry("carp", "CARP: Visuomotor Policy Learning via Coarse-to-Fine "
           "Autoregressive Prediction", "2412.06782", 2024, "multimodal",
           "robot-policy", "generative"),
    _entry("at_at", "Removing Neural Signal Artifacts with "
           "Autoencoder-Targeted Adversarial Transformers (AT-AT)",
           "2502.05332", 2025,
           "signal", "eeg-denoising", "signal-motion-sequence"),
    _entry("matryoshka_sae", "Insights into a radiology-specialised "
           "multimodal large language model with sparse autoencoders",
           "2507.12950", 2025, "multimodal", "interpretability",
           "signal-motion-sequence"),
    _entry("state_vad", "Making Reconstruction-based Method Great Again "
           "for Video Anomaly Detection (STATE)", "2301.12048", 2022, "vision", "video-anomaly-detection",
           "signal-motion-sequence"),
    _entry("motionclip", "MotionCLIP: Exposing Human Motion Generation to "
           "CLIP Space", "2203.08063", 2022, "multimodal",
           "motion-text-alignment", "signal-motion-sequence"),
    _entry("mogo", "Mogo: RQ Hierarchical Causal Transformer for "
           "High-Quality 3D Human Motion Generation", "2412.07797", 2024, "multimodal",
           "text-to-motion", "signal-motion-sequence"),
    _entry("single_layer_uat", "Universal Approximation Theorem for a "
           "Single-Layer Transformer", "2507.10581", 2025, "signal", "function-approximation",
           "signal-motion-sequence"),
    _entry("icl_boolean", "Understanding In-Context Learning in "
           "Transformers and LLMs by Learning to Learn Discrete Functions",
           "2310.03016", 2023, "nlp", "in-context-learning",
           "signal-motion-sequence"),
    _entry("atlas", "ATLAS: Learning to Optimally Memorize the Context at "
           "Test Time", "2505.23735", 2025, "nlp", "sequence-modeling",
           "signal-motion-sequence"),
    _entry("lmuformer", "LMUFormer: Low Complexity Yet Powerful Spiking "
           "Model With Legendre Memory Units", "2402.04882", 2024, "audio",
           "keyword-spotting", "signal-motion-sequence"),
    _entry("axial_transformer", "Axial Attention in Multidimensional "
           "Transformers", "1912.12180", 2019, "vision",
           "density-estimation", "efficient-attention"),
    _entry("inference_optimization_survey", "A Survey of Techniques for "
           "Optimizing Transformer Inference", "2307.07982", 2023, "nlp",
           "language-modeling", "efficient-attention"),
    _entry("combiner", "Combiner: Full Attention Transformer with Sparse "
           "Computation Cost", "2107.05768", 2021, "nlp",
           "language-modeling", "efficient-attention"),
    _entry("lean_attention", "Lean Attention: Hardware-Aware Scalable "
           "Attention Mechanism for the Decode-Phase of Transformers",
           "2405.10480", 2024, "nlp", "language-modeling",
           "efficient-attention"),
    _entry("ecoformer", "EcoFormer: Energy-Saving Attention with Linear "
           "Complexity", "2209.09004", 2022, "vision",
           "image-classification", "efficient-attention"),
    _entry("fit", "FIT: Far-reaching Interleaved Transformers",
           "2305.12689", 2023, "vision", "image-generation",
           "efficient-attention"),
    _entry("slab", "SLAB: Efficient Transformers with Simplified Linear "
           "Attention and Progressive Re-parameterized Batch Normalization",
           "2405.11582", 2024, "vision", "image-classification",
           "efficient-attention"),
    _entry("efficient_attention_survey", "A Practical Survey on Faster and "
           "Lighter Transformers", "2103.14636", 2021, "nlp",
           "long-sequence-classification", "efficient-attention"),
    _entry("applications_survey", "A Comprehensive Survey on Applications "
           "of Transformers for Deep Learning Tasks", "2306.07303", 2023,
           "nlp", "language-modeling", "efficient-attention"),
)}


def validate_tags(model_name, tags):
    """Raises ValueError naming the model if its taxonomy tags are wrong."""
    missing = [t for t in REQUIRED_TAGS if t not in tags]
    if missing:
        raise ValueError(
            f"Model '{model_name}': missing taxonomy tags {missing}; "
            f"expected {list(REQUIRED_TAGS)}, received {sorted(tags)}.")
    domain = tags["domain"]
    if domain not in DOMAINS:
        raise ValueError(
            f"Model '{model_name}': domain '{domain}' is not one of "
            f"{sorted(DOMAINS)}.")
    if tags["task"] not in DOMAINS[domain]["tasks"]:
        raise ValueError(
            f"Model '{model_name}': task '{tags['task']}' is not a task of "
            f"domain '{domain}'; expected one of "
            f"{list(DOMAINS[domain]['tasks'])}.")
    if tags["modality"] not in MODALITIES:
        raise ValueError(
            f"Model '{model_name}': modality '{tags['modality']}' is not one "
            f"of {list(MODALITIES)}.")
    if tags["family"] not in FAMILIES:
        raise ValueError(
            f"Model '{model_name}': family '{tags['family']}' is not one of "
            f"{list(FAMILIES)}.")
    if tags["paper"] not in CATALOGUE:
        raise ValueError(
            f"Model '{model_name}': paper '{tags['paper']}' is not in the "
            "catalogue (official/taxonomy.py CATALOGUE).")


def catalogue_table(models_by_paper):
    """Markdown table of the catalogue by domain and task.

    Args:
        models_by_paper: dict slug -> list of registered model names.
    """
    lines = ["| domain | task | paper | year | garden models |",
             "|---|---|---|---|---|"]
    order = list(DOMAINS)
    entries = sorted(CATALOGUE.values(), key=lambda e: (
        order.index(e["domain"]), e["task"], e["slug"]))
    for e in entries:
        title = e["title"]
        if e["arxiv"]:
            title = f"[{title}](https://arxiv.org/abs/{e['arxiv']})"
        models = models_by_paper.get(e["slug"], [])
        shown = ", ".join(f"`{m}`" for m in models) if models else (
            "catalogued")
        lines.append(f"| {DOMAINS[e['domain']]['title']} | {e['task']} | "
                     f"{title} | {e['year']} | {shown} |")
    return "\n".join(lines)
