"""Batch centering (BatchNorm's zero-mean step) and data with a mean (docs/centering.md): sources' moments with a
mean, `Data.centered`, the centered step against autodiff ("center-detach" = "center" for the Euclidean loss,
not for the cosine loss), the expected centered update against Lemma 1 on the centered moments (Eq. C2) and the contrastive
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


def _args():
    s = _state()
    x = jnp.ones((4, 4))
    return s.W, s.Wp, s.Wa, x, x, "one"


def _state(n1=4, n2=3, seed=1):
    r = np.random.default_rng(seed)
    return bd.State(r.standard_normal((n2, n1)), r.standard_normal((n2, n2)), r.standard_normal((n2, n1)))


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["additive", "isotropic", "scramble"])
def test_moments_with_a_mean_are_the_uncentered_sample_moments(kind, rng):
    """moments() = (E[x1 x2ᵀ], E[x1 x1ᵀ] − E[x1 x2ᵀ]) uncentered, view_mean() = E[x1], and centered_moments(8) =
    the expected batch-centered moments of batches of 8 (the 60000 samples cut into 7500 batches, each centered on
    its own mean: E[(1/B) Σ_b x̃2_b x̃1_bᵀ] and E[(1/B) Σ_b x̃1_b x̃1_bᵀ] − that; the (1 − 1/B) factor is in what is
    compared, not divided out). Each within 5 sampling SEs per entry (SE from the sample, or the batches',
    spread / √count): a > 5 SE deviation among the 68 entries has probability < 1e-4. Control: the B = ∞
    centered moments (no (1 − 1/B)) miss the batch-centered ones by > 5 SE."""
    src = _source(rng, kind)
    n, B = 60000, 8
    x1, x2 = (np.asarray(a) for a in src.sample(jax.random.PRNGKey(3), n))
    X, Xp = (np.asarray(a) for a in src.moments().matrices())

    def z(samples, expected):
        return (samples.mean(0) - expected) / np.maximum(samples.std(0, ddof=1) / np.sqrt(len(samples)), 1e-300)

    for samples, expected in ((x1[:, :, None] * x2[:, None, :], X), (x1[:, :, None] * x1[:, None, :], X + Xp),
                              (x1, np.asarray(src.view_mean()))):
        assert np.abs(z(samples, expected)).max() <= 5, kind
    c1, c2 = (a.reshape(n // B, B, -1) - a.reshape(n // B, B, -1).mean(1, keepdims=True) for a in (x1, x2))
    s21 = np.einsum("kbi,kbj->kij", c2, c1) / B
    s21 = 0.5 * (s21 + np.swapaxes(s21, 1, 2))  # E[x̃2 x̃1ᵀ] is symmetric; the symmetric part's spread
    s11 = np.einsum("kbi,kbj->kij", c1, c1) / B
    for b, tol in ((B, 5), (None, None)):
        Xc, Xpc = (np.asarray(a) for a in src.centered_moments(b).matrices())
        zmax = max(np.abs(z(s21, Xc)).max(), np.abs(z(s11 - s21, Xpc)).max())
        assert zmax <= 5 if tol else zmax > 5, (kind, b, zmax)


def test_flow_moments_is_the_centered_flow_s_data(rng):
    """flow_moments(source, setup): moments() without centering, centered_moments(setup.batch) with it."""
    src = _source(rng)
    for setup, ref in ((sp.Setup(batch=8), src.moments()), (sp.Setup(batch=8, center="center"),
                                                           src.centered_moments(8)),
                       (sp.Setup(batch=None, center="center-detach"), src.centered_moments(None))):
        for a, b in zip(sp.flow_moments(src, setup).matrices(), ref.matrices()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="flow_moments takes"):
        sp.flow_moments(src.moments(), sp.Setup())


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
        sp.Setup(batch=1, center="center")
    for f in (lambda c: center_batch(jnp.ones((4, 2)), c), lambda c: euclidean_loss(*_args(), c),
              lambda c: cosine_loss(*_args(), c)):
        with pytest.raises(ValueError, match="center must be one of"):
            f("normal")  # the former name: refused, not read as "center"


@pytest.mark.slow
@pytest.mark.parametrize("views", ["one", "symmetric"])
def test_euclidean_centered_step_is_autodiff_for_center_and_center_detach(views, rng):
    """The closed-form step on centered batch moments is −∇ of the centered sample loss with the batch mean
    differentiated ("center") and detached ("center-detach") alike: the residuals r_b are centered, Σ_b r_b = 0."""
    src, s0 = _source(rng), _state()
    sgd = sp.SGD(lr=1.0, lr_p=0.5)
    key = jax.random.PRNGKey(7)
    x1, x2 = src.sample(key, 6)  # sgd_step draws its batch with the key it is given
    T = s0.Wa
    for center in sp.CENTERS:
        setup = sp.Setup(batch=6, center=center, views=views)
        ts0 = init_train_state(s0, setup)
        ts1 = sgd_step(ts0, sgd, src, src.moments(), key, setup)
        gW, gWp = jax.grad(euclidean_loss, argnums=(0, 1))(s0.W, s0.Wp, T, x1, x2, views, center)
        np.testing.assert_allclose(ts1.W - s0.W, -gW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(ts1.Wp - s0.Wp, -0.5 * gWp, rtol=1e-12, atol=1e-12)
    r = center_batch(x1 @ (s0.Wp @ s0.W).T) - center_batch(x2 @ T.T)
    np.testing.assert_allclose(jnp.sum(r, axis=0), 0.0, atol=1e-12)


@pytest.mark.slow
def test_cosine_center_detach_differs_from_center(rng):
    """With the cosine loss the per-sample normalisation makes the residual gradients uncentered, so detaching the
    batch mean changes the gradient (by more than 1% here) though not the loss."""
    src, s0 = _source(rng), _state()
    x1, x2 = src.sample(jax.random.PRNGKey(2), 16)
    args = (s0.W, s0.Wp, s0.Wa, x1, x2, "one")
    ln, ld = cosine_loss(*args, "center"), cosine_loss(*args, "center-detach")
    np.testing.assert_allclose(ln, ld, rtol=1e-14)
    gn, gd = (jax.grad(cosine_loss)(*args, c) for c in ("center", "center-detach"))
    assert float(jnp.linalg.norm(gn - gd)) > 0.01 * float(jnp.linalg.norm(gn))
    # and training with it runs, both modes
    for c in ("center", "center-detach"):
        run = sp.train(s0, sp.SGD(lr=0.05), src, jax.random.PRNGKey(0), 4,
                       setup=sp.Setup(loss="cosine", batch=16, center=c))
        assert str(run.status_names()) == "succeeded"


@pytest.mark.slow
def test_cosine_center_is_the_loss_on_centered_views_and_detach_agrees_in_expectation(rng):
    """`Data.centered`'s cosine case: with "center" the gradient is the uncentered loss's on the batch-centered views
    (exactly, to rounding), whose marginal moments are Data.centered(B, m); "center-detach" adds Wpᵀ mean_b(g_b) x̄1ᵀ
    to the W gradient, zero in expectation for Gaussian views (x̄ is independent of the centered samples, and g is odd
    in them): over 4000 batches of B = 4 the mean difference is within 4 SE per entry (12 entries: P(exceed) ≈
    1e-3). Control: the uncentered gradient ("none") minus "center" misses zero by > 10 SE."""
    src, s0 = _source(rng), _state()

    def grads(k):
        x1, x2 = src.sample(k, 4)
        g = [jax.grad(cosine_loss)(s0.W, s0.Wp, s0.Wa, x1, x2, "one", c) for c in sp.CENTERS]
        return g + [jax.grad(cosine_loss)(s0.W, s0.Wp, s0.Wa, center_batch(x1), center_batch(x2), "one", "none")]

    gn, gc, gd, g0 = jax.jit(lambda ks: jax.lax.map(grads, ks))(jax.random.split(jax.random.PRNGKey(4), 4000))
    np.testing.assert_allclose(gc, g0, rtol=0, atol=1e-10)

    def zmax(d):
        d = np.asarray(d)
        return np.abs(d.mean(0) / (d.std(0, ddof=1) / np.sqrt(len(d)))).max()

    assert zmax(gd - gc) <= 4
    assert zmax(gn - gc) > 10


@pytest.mark.slow
def test_batch_none_centered_is_euler_step_of_centered_flow(rng):
    """batch=None with centering is one Euler step of Lemma 1 on the population-centered moments, bit for bit."""
    src, s0 = _source(rng), _state()
    sgd = sp.SGD(lr=0.05, lr_p=0.1, wd=0.02, gamma_a=0.97)
    run = sp.train(s0, sgd, src, jax.random.PRNGKey(0), 1, setup=sp.Setup(batch=None, ema_form="flow",
                                                                          center="center"), save_every=1)
    hyper, dt = sp.to_flow(sgd)
    sol = bd.simulate(s0, hyper, src.centered_moments(None), float(dt), ts=jnp.array([0.0, float(dt)]), dt=float(dt))
    for k in ("W", "Wp", "Wa"):
        np.testing.assert_array_equal(getattr(run.states, k)[1], getattr(sol.states, k)[1])


@pytest.mark.slow
def test_centered_update_is_lemma1_on_centered_moments():
    """Eq. C2 and C3 (docs/centering.md): the centered SGD update averaged over 2000 batches of B = 4 is Lemma 1 on
    Data.centered(B, m), and its paired difference from the uncentered update is the contrastive term, each to
    max |z| ≤ 4 over 21 entries (P(exceed) ≈ 1e-3, fixed before comparing); controls: uncentered Lemma 1 and
    B = ∞ centering miss by > 10 SE; "center-detach" gives the same update as "center" batch by batch (to
    rounding: the Euclidean residuals are centered)."""
    from byoldyn.figures.centering import CHECK_ZMAX, contrastive_term, update_check, zscores

    uc = update_check(centers=sp.CENTERS)
    for a, b in zip(uc["updates"]["center-detach"], uc["updates"]["center"]):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert np.abs(zscores(uc["updates"]["center"], uc["centered"])).max() <= CHECK_ZMAX
    assert np.abs(zscores(uc["diff"], uc["term"])).max() <= CHECK_ZMAX
    assert np.abs(zscores(uc["updates"]["center"], uc["lemma1"])).max() > 10
    inf = bd.vector_field(uc["state"], bd.Hyper(alpha_p=uc["alpha_p"]), uc["source"].centered_moments(None))
    assert np.abs(zscores(uc["updates"]["center"], (inf.W, inf.Wp))).max() > 10
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
    (the control) must miss by more. B = ∞ centering (`centered_moments(None)`) is no control here: its Euler path
    lies ≤ 8 SE from B = 8's (max over entries; measured: 0.027 in W against a tolerance of 4.5 SE + 2% ≈ 0.06), so
    at this size (48 seeds, t = 1.5) the test cannot resolve the (1 − 1/B) factor; the averaged-update check
    (test_centered_update_is_lemma1_on_centered_moments) does, by ~20 SE."""
    src, s0 = _source(rng), _state()
    sgd = sp.SGD(lr=0.01, lr_p=0.02, wd=0.01, gamma_a=0.99)
    setup = sp.Setup(batch=8, center="center", ema_form="flow")
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
