"""The declared update rules, one line each: "header": "Declaration".

cc/kernels/<header>.h holds the rule's math and its declaration (a struct of
that name; cc/kernels/declaration.h says what it declares). For each line, the
builds (CMakeLists.txt, cc/BUILD) make its TensorFlow ops (cc/tf/rule_ops.cc.in),
its CUDA launchers (cc/cuda/rule_launchers.cu.cc.in) and its NumPy binding
(cc/python/rule_binding.cc.in). Keep one line per rule in this form: CMake
reads the file too.
"""

RULES = {
    "adabelief": "AdaBelief",
    "adadelta": "Adadelta",
    "adagrad": "Adagrad",
    "adam": "Adam",
    "adamax": "Adamax",
    "adamw": "AdamW",
    "ftrl": "Ftrl",
    "full_matrix_adagrad": "FullMatrixAdagrad",
    "lamb": "Lamb",
    "lars": "Lars",
    "lion": "Lion",
    "muon": "MuonAdamW",
    "nadam": "Nadam",
    "novograd": "NovoGrad",
    "radam": "RAdam",
    "rmsprop": "RMSprop",
    "schedule_free_adamw": "ScheduleFreeAdamW",
    "schedule_free_sgd": "ScheduleFreeSGD",
    "sgd": "SGD",
    "shampoo": "Shampoo",
    "yogi": "Yogi",
}
