"""What is ours alone: command plumbing, training, evaluation, serving.

The packages that keep the original TF-Slim import paths (`nets`,
`datasets`, `preprocessing`, `deployment`) live beside this one; importing
this package checks that no other distribution has claimed them.
"""

from slim_classifier.packaging import check_shared_packages

check_shared_packages()
