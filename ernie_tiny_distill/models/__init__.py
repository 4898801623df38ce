"""Models: teachers and students (PaddleNLP ERNIE family), students born from the teacher, converters."""
