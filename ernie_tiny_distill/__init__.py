"""ernie_tiny_distill: distill ERNIE/BERT teachers into tiny students and ship them with Paddle Inference.

Data flow: config -> readers/data -> tasks -> models -> losses -> trainer -> metrics -> export/predictor.
Importing the package does not import Paddle, so command-line tools can set thread counts first.
"""

__version__ = "0.1.0"
