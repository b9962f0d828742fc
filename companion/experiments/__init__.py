"""The chapters' experiment harnesses; each module's docstring names the chapters that use it.

- Foundations: :mod:`~companion.experiments.perceptron` (Rosenblatt's rule, XOR, linear stacks),
  :mod:`~companion.experiments.shallow_networks` (one-hidden-layer networks per seed),
  :mod:`~companion.experiments.bias_variance` (the bias–variance–noise decomposition),
  :mod:`~companion.experiments.backprop` (backpropagation by hand), :mod:`~companion.experiments.logit_growth`
  (logits and confidence under label smoothing), :mod:`~companion.experiments.depth_gradients` (gradients
  through depth, clipping, residual connections);
- Regularization: :mod:`~companion.experiments.testbed` (the overfitting testbed),
  :mod:`~companion.experiments.regularizer_race` (regularizers under one budget, over seeds);
- Optimization: :mod:`~companion.experiments.optimizer_race` (optimizers raced on 2-D functions and the
  digits MLP), :mod:`~companion.experiments.gradient_sequences` (an optimizer fed a prescribed gradient
  sequence), :mod:`~companion.experiments.nesterov_forms` (Nesterov's method in the papers' forms),
  :mod:`~companion.experiments.sparse_features` (a problem with rare features),
  :mod:`~companion.experiments.steps_to_target` (steps until a target accuracy);
- Training in practice: :mod:`~companion.experiments.batch_size` (time, gradient noise and learning rate
  against the batch size);
- Optimizers after Adam: :mod:`~companion.experiments.warmup_race` (the variance of Adam's adaptive rate,
  warmup shapes, RAdam against warmup), :mod:`~companion.experiments.factored_moments` (Adafactor's factored
  second moment), :mod:`~companion.experiments.hidden_matrices` (Muon on the hidden matrices with AdamW for
  the rest; the scalar Newton–Schulz map), :mod:`~companion.experiments.convex_race` (full-batch and
  mini-batch L-BFGS on softmax regression, counting evaluations), :mod:`~companion.experiments.iterate_averaging`
  (Polyak–Ruppert averaging on a noisy quadratic, SWA and EMA on the testbed),
  :mod:`~companion.experiments.lazy_embeddings` (lazy against dense Adam on an embedding model);
- Convolutional networks: :mod:`~companion.experiments.convnet_testbed` (logistic regression, MLP and ConvNet on
  MNIST-1D under one budget), :mod:`~companion.experiments.pooling_race` (max, average and stochastic pooling
  over seeds; sampled passes against the test-time weighting).
"""
