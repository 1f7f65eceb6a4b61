"""Rendering one synthetic clip: the genre's :class:`~raysearch.data.synth.styles.Style` becomes
float32 samples with vectorised numpy (drums on a 16-step grid, bass, chords, lead, a noise
texture, then a "recording" stage). Deterministic: a clip's randomness comes from
``np.random.default_rng((seed, genre_index, index))``."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from raysearch.data import GENRES
from raysearch.data.synth.styles import (
    BORROW_PROBABILITY,
    NEIGHBOUR_SHARE,
    PATTERN_PROB,
    STEPS_PER_BAR,
    STYLES,
    Drums,
    Part,
    Style,
    Timbre,
)

SAMPLE_RATE = 22_050

# --------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    """Per-clip timing and harmony shared by all layers."""

    sr: int
    n: int  # samples in the clip
    step: float  # seconds per 16th note
    swing: float
    humanize: float
    key: int  # pitch class of the tonic
    harmony: tuple[int, ...]
    melody: tuple[int, ...]
    progression: tuple[int, ...]
    bars_per_chord: int

    @property
    def n_steps(self) -> int:
        return int(math.ceil(self.n / self.sr / self.step)) + 1

    def chord_degree(self, step_index: int) -> int:
        bar = step_index // STEPS_PER_BAR
        return self.progression[(bar // self.bars_per_chord) % len(self.progression)]


def _pattern_probs(pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """Onset probabilities and accent flags of a 16-step pattern string."""
    if len(pattern) != STEPS_PER_BAR:
        raise ValueError(f"pattern {pattern!r} must have {STEPS_PER_BAR} steps")
    probs = np.array([PATTERN_PROB[c] for c in pattern])
    accents = np.array([c == "X" for c in pattern])
    return probs, accents


def _events(pattern: str, clock: Clock, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Step indices, onset times (s) and velocities of the hits of a pattern over the clip."""
    probs, accents = _pattern_probs(pattern)
    idx = np.arange(clock.n_steps)
    pos = idx % STEPS_PER_BAR
    hit = rng.random(idx.size) < probs[pos]
    # Swing delays the off-beat 8th (and the 16ths around it) towards the triplet position.
    swing_offset = np.array([0.0, 1 / 12, 1 / 6, 1 / 12])[idx % 4] * clock.swing * 4 * clock.step
    jitter = rng.normal(0.0, clock.humanize, idx.size) if clock.humanize > 0 else 0.0
    times = np.maximum(idx * clock.step + swing_offset + jitter, 0.0)
    velocity = np.where(accents[pos], 1.0, 0.75) * rng.uniform(0.8, 1.0, idx.size)
    keep = hit & (times < clock.n / clock.sr)
    return idx[keep], times[keep], velocity[keep]


# --------------------------------------------------------------------------------------------------
# Sound sources
# --------------------------------------------------------------------------------------------------


def _wavetable(harmonics: int, rolloff: float, odd_only: bool, size: int = 2048) -> np.ndarray:
    """One period of a band-limited waveform (plus a guard sample for interpolation)."""
    k = np.arange(1, harmonics + 1)
    amps = k.astype(float) ** -rolloff
    if odd_only:
        amps[k % 2 == 0] = 0.0
    spec = np.zeros(size // 2 + 1, dtype=complex)
    spec[k] = -0.5j * size * amps
    table = np.fft.irfft(spec, size)
    table /= np.abs(table).max()
    return np.append(table, table[0])


def _lookup(table: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Read a wavetable at the given phases (in cycles) with linear interpolation."""
    size = table.size - 1
    pos = (phase % 1.0) * size
    i0 = pos.astype(np.int64)
    frac = pos - i0
    return table[i0] * (1.0 - frac) + table[i0 + 1] * frac


def _envelope(n_note: int, n_total: int, timbre: Timbre, sr: int) -> np.ndarray:
    """Attack / exponential decay to sustain / linear release."""
    t = np.arange(n_total) / sr
    env = np.minimum(t / timbre.attack, 1.0) if timbre.attack > 0 else np.ones(n_total)
    env *= timbre.sustain + (1.0 - timbre.sustain) * np.exp(-t / timbre.decay)
    tail = n_total - n_note
    if tail > 0:
        env[n_note:] *= np.linspace(1.0, 0.0, tail)
    return env


def _add_note(
    buf: np.ndarray,
    start: int,
    n_note: int,
    freq: float,
    amp: float,
    timbre: Timbre,
    tables: dict[int, np.ndarray],
    sr: int,
    bend: bool,
) -> None:
    """Render one note into ``buf`` starting at sample ``start``."""
    n_total = min(n_note + int(timbre.release * sr), buf.size - start)
    if n_total <= 0:
        return
    harmonics = max(1, min(timbre.harmonics, int(sr / 2 / (freq * (1 + 2 * timbre.vibrato)))))
    table = tables.get(harmonics)
    if table is None:
        table = tables[harmonics] = _wavetable(harmonics, timbre.rolloff, timbre.odd_only)
    t = np.arange(n_total) / sr
    if timbre.vibrato > 0 or bend:
        inst = np.full(n_total, freq)
        if timbre.vibrato > 0:
            inst *= 1.0 + timbre.vibrato * np.sin(2 * np.pi * 5.5 * t)
        if bend:
            inst *= 2.0 ** (-np.exp(-t / 0.07) / 6)  # slide up a whole tone
        phase = np.cumsum(inst) / sr
    else:
        phase = freq * t
    buf[start : start + n_total] += (
        amp * _envelope(n_note, n_total, timbre, sr) * _lookup(table, phase)
    )


def _drive(x: np.ndarray, gain: float) -> np.ndarray:
    """Peak-normalise and soft-clip (tanh) with the given gain; gain 0 only normalises."""
    peak = np.abs(x).max()
    if peak == 0:
        return x
    x = x / peak
    if gain > 0:
        x = np.tanh(gain * x) / np.tanh(gain)
    return x


# --------------------------------------------------------------------------------------------------
# Drums
# --------------------------------------------------------------------------------------------------


def _kick(d: Drums, sr: int, rng: np.random.Generator) -> np.ndarray:
    decay = d.kick_decay * rng.uniform(0.8, 1.25)
    t = np.arange(int(sr * max(0.25, 4 * decay))) / sr
    f_end = d.kick_freq * rng.uniform(0.85, 1.15)
    freq = f_end * (1.0 + 2.5 * np.exp(-t / 0.03))
    body = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / decay)
    click = 0.3 * rng.standard_normal(t.size) * np.exp(-t / 0.004)
    return body + click


def _snare(d: Drums, sr: int, rng: np.random.Generator) -> np.ndarray:
    decay = d.snare_decay * rng.uniform(0.8, 1.25)
    t = np.arange(int(sr * 5 * decay)) / sr
    noise = np.diff(rng.standard_normal(t.size + 1)) * 0.5
    tone = np.sin(2 * np.pi * d.snare_tone * rng.uniform(0.9, 1.1) * t) * np.exp(-t / 0.04)
    return noise * np.exp(-t / decay) + 0.6 * tone


def _cymbal(d: Drums, sr: int, rng: np.random.Generator) -> np.ndarray:
    decay = d.hat_decay * rng.uniform(0.8, 1.25)
    t = np.arange(int(sr * 5 * decay)) / sr
    x = np.diff(rng.standard_normal(t.size + 1)) * 0.5
    if d.ride:
        partials = rng.uniform(2500, 7000, 6)
        x = 0.5 * x + 0.4 * np.sin(2 * np.pi * np.outer(t, partials)).sum(axis=1) / 3
    return 0.5 * x * np.exp(-t / decay)


def _place(buf: np.ndarray, sound: np.ndarray, starts: np.ndarray, vel: np.ndarray) -> None:
    for s, v in zip(starts, vel, strict=True):
        end = min(buf.size, s + sound.size)
        buf[s:end] += v * sound[: end - s]


def _render_drums(d: Drums, clock: Clock, rng: np.random.Generator) -> np.ndarray:
    buf = np.zeros(clock.n)
    n_bars = clock.n_steps // STEPS_PER_BAR + 1
    muted = rng.random(n_bars) < 0.08  # occasional break
    if rng.random() < 0.2:  # intro without drums
        muted[: rng.integers(1, 3)] = True
    sounds = (_kick(d, clock.sr, rng), _snare(d, clock.sr, rng), _cymbal(d, clock.sr, rng))
    levels = (1.0, 0.8 * rng.uniform(0.7, 1.3), 0.5 * rng.uniform(0.6, 1.4))
    for pattern, sound, level in zip((d.kick, d.snare, d.hat), sounds, levels, strict=True):
        steps, times, vel = _events(pattern, clock, rng)
        keep = ~muted[steps // STEPS_PER_BAR]
        starts = np.round(times[keep] * clock.sr).astype(np.int64)
        _place(buf, sound, starts, level * vel[keep])
    return buf


# --------------------------------------------------------------------------------------------------
# Pitched parts
# --------------------------------------------------------------------------------------------------


def _degree_pitch(scale: tuple[int, ...], degree: int) -> int:
    """Semitones above the tonic of a (possibly negative or > octave) scale degree."""
    octave, step = divmod(degree, len(scale))
    return 12 * octave + scale[step]


def _place_above(pitch: int, low: int) -> int:
    """Transpose ``pitch`` by octaves to the lowest position at or above ``low``."""
    return pitch + 12 * math.ceil((low - pitch) / 12)


class _Voice:
    """Chooses the pitches of successive onsets of one part (keeps melodic state)."""

    def __init__(self, part: Part, clock: Clock, rng: np.random.Generator) -> None:
        self.part, self.clock, self.rng = part, clock, rng
        self.count = 0
        self.prev: int | None = None
        lo, hi = part.register
        self.base = _place_above(clock.key, lo)  # tonic at the bottom of the register
        span = [
            k
            for k in range(1, 6 * len(clock.melody))
            if _degree_pitch(clock.melody, k) <= hi - self.base
        ]
        self.max_degree = max(span, default=1)
        self.degree = int(rng.integers(0, self.max_degree + 1))

    def pitches(self, step_index: int) -> list[int]:
        """The pitch(es) of the part's next onset, which falls on 16th step ``step_index``."""
        degree = self.clock.chord_degree(step_index)
        self.count += 1
        mode = self.part.mode
        if mode == "chord":
            return [self._chord_tone(degree, v) for v in self.part.voicing]
        if mode == "arp":
            return [
                self._chord_tone(
                    degree, self.part.voicing[(self.count - 1) % len(self.part.voicing)]
                )
            ]
        if mode == "root":
            return [self._chord_tone(degree, 0)]
        if mode == "fifth":
            return [self._chord_tone(degree, 0 if self.count % 2 else 4, fold=True)]
        if mode == "octave":
            return [self._chord_tone(degree, 0) + (12 if self.count % 2 == 0 else 0)]
        if mode == "walk":
            return [self._walk(step_index, degree)]
        if mode == "melody":
            return [self._melody()]
        raise ValueError(f"unknown part mode {mode!r}")

    def _chord_tone(self, degree: int, offset: int, fold: bool = False) -> int:
        """Scale degree ``degree + offset`` of the harmony, voiced above the chord root."""
        c, (lo, hi) = self.clock, self.part.register
        root = _place_above(c.key + _degree_pitch(c.harmony, degree), lo)
        pitch = root + _degree_pitch(c.harmony, degree + offset) - _degree_pitch(c.harmony, degree)
        return pitch - 12 if fold and pitch > hi else pitch

    def _walk(self, step_index: int, degree: int) -> int:
        """Walking bass: the root on each chord change, then steps and leaps around it."""
        lo, hi = self.part.register
        pitch = self._chord_tone(degree, 0)
        at_change = step_index % (STEPS_PER_BAR * self.clock.bars_per_chord) == 0
        if not at_change and self.prev is not None:
            moved = self.prev + int(self.rng.choice((-2, -1, 1, 2, 3, -3, 5, -5)))
            pitch = moved if lo <= moved <= hi else pitch
        self.prev = pitch
        return pitch

    def _melody(self) -> int:
        """Random walk on the melody scale, reflected at the edges of the register."""
        d = self.degree + int(self.rng.choice((-2, -1, -1, 0, 1, 1, 2, 3, -3)))
        if d < 0:
            d = -d
        if d > self.max_degree:
            d = 2 * self.max_degree - d
        self.degree = int(np.clip(d, 0, self.max_degree))
        return self.base + _degree_pitch(self.clock.melody, self.degree)


def _jitter_timbre(timbre: Timbre, rng: np.random.Generator) -> Timbre:
    """Per-clip variation of the timbre (brightness, decay, overdrive)."""
    return replace(
        timbre,
        harmonics=max(1, int(round(timbre.harmonics * rng.uniform(0.7, 1.3)))),
        rolloff=timbre.rolloff * rng.uniform(0.8, 1.2),
        decay=timbre.decay * rng.uniform(0.7, 1.4),
        drive=timbre.drive * rng.uniform(0.6, 1.5),
    )


def _render_part(part: Part, clock: Clock, rng: np.random.Generator) -> np.ndarray:
    buf = np.zeros(clock.n)
    timbre = _jitter_timbre(part.timbre, rng)
    voice = _Voice(part, clock, rng)
    steps, times, vel = _events(part.pattern, clock, rng)
    bends = rng.random(steps.size) < part.bend
    tables: dict[int, np.ndarray] = {}
    for i, (s, t, v) in enumerate(zip(steps, times, vel, strict=True)):
        if part.length > 0:
            n_steps = part.length
        else:
            n_steps = min(steps[i + 1] - s, STEPS_PER_BAR) if i + 1 < steps.size else 4
        n_note = max(1, int(n_steps * clock.step * clock.sr))
        for j, pitch in enumerate(voice.pitches(int(s))):
            start = int(round((t + j * part.strum) * clock.sr))
            if start >= clock.n:
                continue
            freq = 440.0 * 2.0 ** ((pitch - 69) / 12)
            _add_note(buf, start, n_note, freq, float(v), timbre, tables, clock.sr, bool(bends[i]))
    return _drive(buf, timbre.drive)


# --------------------------------------------------------------------------------------------------
# Background elements shared by all classes, and the "recording" stage
# --------------------------------------------------------------------------------------------------


def _background(clock: Clock, rng: np.random.Generator) -> np.ndarray:
    """Genre-independent extras: mains hum, vinyl crackle, a soft drone at a random pitch."""
    n, sr = clock.n, clock.sr
    t = np.arange(n) / sr
    out = np.zeros(n)
    if rng.random() < 0.25:
        mains = rng.choice((50.0, 60.0))
        hum = sum(np.sin(2 * np.pi * mains * k * t) / k for k in (1, 2, 3))
        out += rng.uniform(0.01, 0.05) * hum
    if rng.random() < 0.25:
        clicks = rng.random(n) < rng.uniform(2, 20) / sr
        out += rng.uniform(0.1, 0.4) * clicks * rng.standard_normal(n)
    if rng.random() < 0.3:
        freq = 440.0 * 2.0 ** ((rng.integers(36, 72) - 69) / 12)
        table = _wavetable(5, 2.0, True)
        out += rng.uniform(0.03, 0.12) * _lookup(table, freq * t)
    return out


def _swell(clock: Clock, depth: float, rng: np.random.Generator) -> np.ndarray:
    """Slow loudness changes (phrasing, crescendos)."""
    t = np.arange(clock.n) / clock.sr
    period = rng.uniform(3.0, 10.0)
    return 1.0 + depth * rng.uniform(0.5, 1.0) * np.sin(
        2 * np.pi * t / period + rng.uniform(0, 2 * np.pi)
    )


def _record(music: np.ndarray, style: Style, clock: Clock, rng: np.random.Generator) -> np.ndarray:
    """EQ tilt, optional low-pass, reverb and coloured noise, all in one FFT pass."""
    n, sr = music.size, clock.sr
    rt = rng.uniform(0.2, 1.5)  # reverb time (s)
    ir_len = int(rt * sr)
    nfft = 1 << int(math.ceil(math.log2(n + ir_len)))
    freqs = np.fft.rfftfreq(nfft, 1.0 / sr)
    rel = np.maximum(freqs, 20.0) / 1000.0
    eq = 10.0 ** (rng.uniform(-3.0, 3.0) * np.log2(rel) / 20.0)  # tilt in dB/octave around 1 kHz
    if rng.random() < 0.4:
        eq /= np.sqrt(1.0 + (freqs / rng.uniform(2500.0, 9000.0)) ** 4)
    eq /= np.sqrt(1.0 + (rng.uniform(20.0, 60.0) / np.maximum(freqs, 1.0)) ** 4)  # rumble filter
    t = np.arange(ir_len) / sr
    ir = rng.standard_normal(ir_len) * np.exp(-6.9 * t / rt)
    ir[0] = 0.0
    ir /= np.sqrt(np.sum(ir**2))
    spectrum = np.fft.rfft(music, nfft) * (1.0 + rng.uniform(0.0, 0.5) * np.fft.rfft(ir, nfft))
    noise_shape = rel ** (-(style.noise_color + rng.uniform(-0.5, 0.5)) / 2.0)
    noise = (rng.standard_normal(freqs.size) + 1j * rng.standard_normal(freqs.size)) * noise_shape
    noise_rms = np.sqrt(2.0 * np.sum(np.abs(noise) ** 2)) / nfft
    level = style.noise * math.exp(rng.normal(0.0, 0.5)) + rng.uniform(0.0, 0.02)
    music_rms = np.sqrt(np.mean(music**2)) + 1e-12
    spectrum = (spectrum + noise * (level * music_rms / noise_rms)) * eq
    return np.fft.irfft(spectrum, nfft)[:n]


# --------------------------------------------------------------------------------------------------
# Clip synthesis
# --------------------------------------------------------------------------------------------------


def _layer_style(genre: str, rng: np.random.Generator) -> str:
    """The genre whose style a layer uses: usually ``genre``, sometimes a (neighbouring) other."""
    if rng.random() >= BORROW_PROBABILITY:
        return genre
    if rng.random() < NEIGHBOUR_SHARE:
        return str(rng.choice(STYLES[genre].neighbours))
    return str(rng.choice([g for g in GENRES if g != genre]))


def _make_clock(style: Style, n: int, sr: int, rng: np.random.Generator) -> Clock:
    bpm = rng.uniform(*style.tempo)
    harmony, melody = style.scales[int(rng.integers(len(style.scales)))]
    return Clock(
        sr=sr,
        n=n,
        step=60.0 / bpm / 4,
        swing=style.swing * rng.uniform(0.8, 1.1),
        humanize=style.humanize,
        key=int(rng.integers(12)),
        harmony=harmony,
        melody=melody,
        progression=style.progressions[int(rng.integers(len(style.progressions)))],
        bars_per_chord=style.bars_per_chord,
    )


def synthesize_clip(
    genre: str, index: int, seed: int, duration: float, sample_rate: int = SAMPLE_RATE
) -> np.ndarray:
    """Render clip ``index`` of ``genre`` as float32 mono samples in [-1, 1].

    Deterministic: all randomness comes from ``np.random.default_rng((seed, genre_index, index))``.
    """
    if genre not in STYLES:
        raise ValueError(f"unknown genre {genre!r}; expected one of {GENRES}")
    if duration <= 0:
        raise ValueError("duration must be positive")
    rng = np.random.default_rng((seed, GENRES.index(genre), index))
    style = STYLES[genre]
    n = int(round(duration * sample_rate))
    clock = _make_clock(style, n, sample_rate, rng)
    mix = np.zeros(n)
    drum_style = STYLES[_layer_style(genre, rng)]
    if drum_style.drums is not None:
        drums = _drive(_render_drums(drum_style.drums, clock, rng), 0.0)
        mix += drum_style.drums.gain * math.exp(rng.normal(0.0, 0.3)) * drums
    for layer in ("bass", "chords", "lead"):
        part: Part | None = getattr(STYLES[_layer_style(genre, rng)], layer)
        if part is not None:
            mix += part.gain * math.exp(rng.normal(0.0, 0.3)) * _render_part(part, clock, rng)
    mix *= _swell(clock, style.swell, rng)
    mix += _background(clock, rng) * (np.abs(mix).max() + 1e-9)
    out = _record(mix, style, clock, rng)
    drive = style.compression * rng.uniform(0.5, 1.5)
    out = _drive(out, drive)
    return np.clip(out * rng.uniform(0.3, 0.95), -1.0, 1.0).astype(np.float32)
