"""Batch centering (BatchNorm's zero-mean step) and data with a mean (docs/centering.md): sources' moments with a
mean, `Data.centered`, the centered step against autodiff (detach = normal for the Euclidean loss, not for the
cosine loss), the expected centered update against Lemma 1 on the centered moments (Eq. C2) and the contrastive
term (Eq. C3), the sampled mean trajectory against the centered flow, and the 2 × 2's seed-set stability."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import random_psd

import byoldyn as bd
from byoldyn import sampled as sp
from byoldyn.sampled.train import center_batch, cosine_loss, euclidean_loss, init_train_state, sgd_step

MU = np.array([1.5, -0.5, 0.0, 0.5])


def _source(rng, kind="additive"):
    Sx = random_psd(rng, 4)
    if kind == "additive":
        return sp.Source.additive(Sx, 0.3 * np.eye(4), mean=MU)
    if kind == "isotropic":
        return sp.Source.isotropic(4, 0.3, 0.7, mean=MU)
    return sp.Source.scramble(Sx, np.eye(4)[:, :2] + 0.3, mean=MU)


def _state(n1=4, n2=3, seed=1):
    r = np.random.default_rng(seed)
    return bd.State(r.standard_normal((n2, n1)), r.standard_normal((n2, n2)), r.standard_normal((n2, n1)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["additive", "isotropic", "scramble"])
def test_moments_with_a_mean_are_the_uncentered_sample_moments(kind, rng):
    """moments() = (E[x1 x2ᵀ], E[x1 x1ᵀ] − E[x1 x2ᵀ]) uncentered, view_mean() = E[x1]; within 5 sampling SEs
    per entry (60000 samples: a > 5 SE deviation among the 36 entries has probability < 1e-4)."""
    src = _source(rng, kind)
    n = 60000
    x1, x2 = (np.asarray(a) for a in src.sample(jax.random.PRNGKey(3), n))
    X, Xp = (np.asarray(a) for a in src.moments().matrices())
    for samples, expected in ((x1[:, :, None] * x2[:, None, :], X), (x1[:, :, None] * x1[:, None, :], X + Xp),
                              (x1, np.asarray(src.view_mean()))):
        err = samples.mean(0) - expected
        se = samples.std(0, ddof=1) / np.sqrt(n)
        assert np.all(np.abs(err) <= 5 * se + 1e-12), (kind, np.abs(err / np.maximum(se, 1e-300)).max())
    # the centered moments are the views' covariances, times (1 - 1/B)
    Xc, Xpc = (np.asarray(a) for a in src.centered_moments(8).matrices())
    m = x1.mean(0)
    cov12 = (x1 - m).T @ (x2 - x2.mean(0)) / n
    np.testing.assert_allclose(Xc / (1 - 1 / 8), 0.5 * (cov12 + cov12.T), atol=0.08)
    np.testing.assert_allclose(Xpc / (1 - 1 / 8), np.cov(x1.T) - 0.5 * (cov12 + cov12.T), atol=0.08)


def test_zero_mean_sources_are_unchanged(rng):
    """Without a mean the sources' samples and moments are the former ones (same stream, same storage)."""
    Sx = random_psd(rng, 4)
    a, b = sp.Source.additive(Sx, 0.3 * np.eye(4)), sp.Source.additive(Sx, 0.3 * np.eye(4), mean=np.zeros(4))
    np.testing.assert_array_equal(a.sample(jax.random.PRNGKey(0), 5)[0], b.sample(jax.random.PRNGKey(0), 5)[0])
    assert a.mu is None and sp.Source.isotropic(4, 0.3).moments().is_isotropic
    np.testing.assert_array_equal(a.view_mean(), np.zeros(4))


def test_data_centered_closed_form_and_errors():
    d = bd.Data.isotropic(3, 0.5, 2.0)
    c = d.centered(4)
    assert c.is_isotropic and float(c.X) == 1.5 and float(c.Xp) == 0.375
    assert float(d.centered(None).X) == 2.0
    m = np.array([1.0, 0.0, 1.0])
    X = np.eye(3) + np.outer(m, m)
    c = bd.Data(X, 0.2 * np.eye(3)).centered(5, m)
    np.testing.assert_allclose(c.X, 0.8 * np.eye(3), atol=1e-15)
    np.testing.assert_allclose(c.Xp, 0.16 * np.eye(3), atol=1e-15)
    for bad, msg in (((1,), "batch must be an integer >= 2"), ((4, [3.0, 0.0, 0.0]), "mean is inconsistent with X"),
                     ((4, [1.0, 0.0]), "mean must be a vector of length n1 = 3")):
        with pytest.raises(ValueError, match=msg):
            bd.Data(X, np.eye(3)).centered(*bad)
    with pytest.raises(ValueError, match="mean must be a vector of length n1 = 4"):
        sp.Source.isotropic(4, 0.3, mean=[1.0, 2.0])
    with pytest.raises(ValueError, match="center must be one of"):
        sp.Setup(center="omit")
    with pytest.raises(ValueError, match="needs batch >= 2"):
        sp.Setup(batch=1, center="normal")


@pytest.mark.slow
@pytest.mark.parametrize("views", ["one", "symmetric"])
def test_euclidean_centered_step_is_autodiff_for_normal_and_detach(views, rng):
    """The closed-form step on centered batch moments is −∇ of the centered sample loss with the batch mean
    differentiated ("normal") and detached ("detach") alike: the residuals r_b are centered, Σ_b r_b = 0."""
    src, s0 = _source(rng), _state()
    sgd = sp.SGD(lr=1.0, lr_p=0.5)
    key = jax.random.PRNGKey(7)
    x1, x2 = src.sample(key, 6)  # sgd_step draws its batch with the key it is given
    T = s0.Wa
    for center in ("normal", "detach", "none"):
        setup = sp.Setup(batch=6, center=center, views=views)
        ts0 = init_train_state(s0, setup)
        ts1 = sgd_step(ts0, sgd, src, src.moments(), key, setup)
        gW, gWp = jax.grad(euclidean_loss, argnums=(0, 1))(s0.W, s0.Wp, T, x1, x2, views, center)
        np.testing.assert_allclose(ts1.W - s0.W, -gW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ts1.Wp - s0.Wp, -0.5 * gWp, rtol=1e-12, atol=1e-12)
    r = center_batch(x1 @ (s0.Wp @ s0.W).T) - center_batch(x2 @ T.T)
    np.testing.assert_allclose(jnp.sum(r, axis=0), 0.0, atol=1e-12)


@pytest.mark.slow
def test_cosine_detach_differs_from_normal(rng):
    """With the cosine loss the per-sample normalisation makes the residual gradients uncentered, so detaching the
    batch mean changes the gradient (by more than 1% here) though not the loss."""
    src, s0 = _source(rng), _state()
    x1, x2 = src.sample(jax.random.PRNGKey(2), 16)
    args = (s0.W, s0.Wp, s0.Wa, x1, x2, "one")
    ln, ld = cosine_loss(*args, "normal"), cosine_loss(*args, "detach")
    np.testing.assert_allclose(ln, ld, rtol=1e-14)
    gn, gd = (jax.grad(cosine_loss)(*args, c) for c in ("normal", "detach"))
    assert float(jnp.linalg.norm(gn - gd)) > 0.01 * float(jnp.linalg.norm(gn))
    # and training with it runs, both modes
    for c in ("normal", "detach"):
        run = sp.train(s0, sp.SGD(lr=0.05), src, jax.random.PRNGKey(0), 4,
                       setup=sp.Setup(loss="cosine", batch=16, center=c))
        assert str(run.status_names()) == "succeeded"


@pytest.mark.slow
def test_batch_none_centered_is_euler_step_of_centered_flow(rng):
    """batch=None with centering is one Euler step of Lemma 1 on the population-centered moments, bit for bit."""
    src, s0 = _source(rng), _state()
    sgd = sp.SGD(lr=0.05, lr_p=0.1, wd=0.02, gamma_a=0.97)
    run = sp.train(s0, sgd, src, jax.random.PRNGKey(0), 1, setup=sp.Setup(batch=None, ema_form="flow",
                                                                          center="normal"), save_every=1)
    hyper, dt = sp.to_flow(sgd)
    sol = bd.simulate(s0, hyper, src.centered_moments(None), float(dt), ts=jnp.array([0.0, float(dt)]), dt=float(dt))
    for k in ("W", "Wp", "Wa"):
        np.testing.assert_array_equal(getattr(run.states, k)[1], getattr(sol.states, k)[1])


@pytest.mark.slow
def test_centered_update_is_lemma1_on_centered_moments():
    """Eq. C2 and C3 (docs/centering.md): the centered SGD update averaged over 2000 batches of B = 4 is Lemma 1 on
    Data.centered(B, m), and its paired difference from the uncentered update is the contrastive term, each to
    max |z| ≤ 4 over 21 entries (P(exceed) ≈ 1e-3, fixed before comparing); controls: uncentered Lemma 1 and
    B = ∞ centering miss by > 10 SE; detach = normal here."""
    from byoldyn.figures.centering import CHECK_ZMAX, contrastive_term, update_check, zscores

    uc = update_check()
    assert np.abs(zscores(uc["updates"]["normal"], uc["centered"])).max() <= CHECK_ZMAX
    assert np.abs(zscores(uc["diff"], uc["term"])).max() <= CHECK_ZMAX
    assert np.abs(zscores(uc["updates"]["normal"], uc["lemma1"])).max() > 10
    inf = bd.vector_field(uc["state"], bd.Hyper(alpha_p=uc["alpha_p"]), uc["source"].centered_moments(None))
    assert np.abs(zscores(uc["updates"]["normal"], (inf.W, inf.Wp))).max() > 10
    k0 = contrastive_term(uc["state"], uc["source"].moments(), uc["source"].view_mean(), None)
    assert np.abs(zscores(uc["diff"], k0)).max() > 10
    # the closed-form term equals the difference of the two Lemma 1 fields (an independent construction)
    np.testing.assert_allclose(uc["term"][0], uc["centered"][0] - uc["lemma1"][0], atol=1e-12)
    np.testing.assert_allclose(uc["term"][1], uc["centered"][1] - uc["lemma1"][1], atol=1e-12)


@pytest.mark.slow
def test_sampled_mean_trajectory_follows_the_centered_flow(rng):
    """Centered SGD (B = 8, lr = 0.01, 150 steps, 48 seeds) averaged over seeds against the Euler path of Lemma 1
    on Data.centered(8, m) (the same discretisation; ema_form "flow", no momentum). Tolerance before comparing:
    4.5 SE per entry (45 entries) plus 2% of the entry's scale for the noise's O(lr) drift; the uncentered flow
    (the control) must miss by more."""
    src, s0 = _source(rng), _state()
    sgd = sp.SGD(lr=0.01, lr_p=0.02, wd=0.01, gamma_a=0.99)
    setup = sp.Setup(batch=8, center="normal", ema_form="flow")
    steps = 150
    run = jax.vmap(lambda k: sp.train(s0, sgd, src, k, steps, setup=setup, save_every=steps).final)(
        jax.random.split(jax.random.PRNGKey(5), 48))
    hyper, dt = sp.to_flow(sgd)

    def euler(data):
        def step(s, _):
            d = bd.vector_field(s, hyper, data)
            return bd.State.unchecked(s.W + dt * d.W, s.Wp + dt * d.Wp, s.Wa + dt * d.Wa), None
        return jax.lax.scan(step, s0, None, length=steps)[0]

    def ok(ref):
        res = []
        for k in ("W", "Wp", "Wa"):
            a, r = np.asarray(getattr(run, k)), np.asarray(getattr(ref, k))
            se = a.std(0, ddof=1) / np.sqrt(a.shape[0])
            res.append(np.abs(a.mean(0) - r) <= 4.5 * se + 0.02 * np.abs(r).max())
        return all(x.all() for x in res)

    assert ok(euler(src.centered_moments(8)))
    assert not ok(euler(src.moments()))


@pytest.mark.slow
def test_centering_verdicts_agree_for_disjoint_seed_sets():
    """The 2 × 2's rows give the same verdicts (claim and control) for seeds 0..5 and 6..11 (small size)."""
    from byoldyn.figures import Check
    from byoldyn.figures.centering import fig_centering

    verdicts = []
    for seed in (0, 6):
        _, rows = fig_centering("small", seed=seed)
        verdicts.append([(c.claim, c.agrees, c.control_agrees) for c in rows if isinstance(c, Check)])
    assert verdicts[0] == verdicts[1]
    assert all(a and c is False for _, a, c in verdicts[0])
