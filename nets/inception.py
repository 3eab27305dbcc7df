"""One import for the Inception nets v1 to v4, named as TF-Slim's `nets.inception` named them.

Code written against TF-Slim (`from nets import inception`, then
`inception.inception_v3(...)` under `inception.inception_v3_arg_scope()`) runs
unchanged. Every version shares one arg_scope, `inception_arg_scope`; the
per-version names are aliases of it.
"""

from nets.inception_utils import inception_arg_scope
from nets.inception_v1 import inception_v1, inception_v1_base
from nets.inception_v2 import inception_v2, inception_v2_base
from nets.inception_v3 import inception_v3, inception_v3_base
from nets.inception_v4 import inception_v4, inception_v4_base

inception_v1_arg_scope = inception_arg_scope
inception_v2_arg_scope = inception_arg_scope
inception_v3_arg_scope = inception_arg_scope
inception_v4_arg_scope = inception_arg_scope

__all__ = [
    'inception_arg_scope',
    'inception_v1', 'inception_v1_arg_scope', 'inception_v1_base',
    'inception_v2', 'inception_v2_arg_scope', 'inception_v2_base',
    'inception_v3', 'inception_v3_arg_scope', 'inception_v3_base',
    'inception_v4', 'inception_v4_arg_scope', 'inception_v4_base',
]
