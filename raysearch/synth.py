"""Synthetic mini-GTZAN: a generator of real WAV files in GTZAN's layout.

GTZAN cannot be downloaded everywhere, so the project ships this generator as its embedded default
dataset. ``python -m raysearch.synth --out DIR`` writes 16-bit PCM mono WAV files at 22,050 Hz to
``DIR/genres_original/<genre>/<genre>.NNNNN.wav`` (the ten GTZAN genres, ``blues.00000.wav`` ...)
plus ``DIR/synthetic.json``, which records the generator parameters so that other code can tell the
set is synthetic and whether an existing folder matches the requested parameters.

Every clip is a small piece of music rendered with vectorised numpy: drums (kick, snare, hi-hat
or ride events on a 16-step grid), a bass line, a chord part and a lead melody over a chord
progression, a noise texture, then a "recording" stage (EQ tilt, optional low-pass, reverb,
compression). The classes differ the way the genres do:

* blues: slow shuffle (strong swing), dominant-7th comping, slightly overdriven guitar timbre,
  blues-scale lead with pitch bends, walking bass, some tape hiss;
* classical: no drums, slow and rubato, near-pure tones (few, fast-decaying harmonics) with slow
  attacks and vibrato, arpeggios, wide pitch range and large dynamic swells;
* country: train beat with brushy hats, boom-chick root-fifth bass, bright twangy plucked strums,
  major-pentatonic lead with slides;
* disco: four-on-the-floor kick, open hats on the off-beats, octave bass, chord stabs and strings;
* hiphop: boom-bap beat with long, boomy 808 kicks and sub bass, sparse dark chords, vinyl noise;
* jazz: swung ride cymbal pattern, brush ghost notes, walking bass, 9th-chord comping, a busy
  sax-like lead, fast tempos;
* metal: fast double-kick 16ths, heavily clipped low power-chord chugs, washy cymbals, white hiss;
* pop: clean, quantised, compressed; sustained bright synth chords and a vocal-like lead;
* reggae: slow one-drop (kick and rimshot on beat 3), off-beat staccato chord chops, round dub bass;
* rock: straight 8ths, moderately overdriven power chords, minor-pentatonic lead.

Each clip draws its own variation from ``np.random.default_rng((seed, genre_index, index))``: tempo,
key, harmony scale and progression, note choices, layer gains, timbre jitter, noise level, drum
breaks, and "background" elements shared by all classes (mains hum, vinyl crackle, a drone, EQ
tilt, low-pass, reverb, level). With some probability a layer is borrowed from another (usually
neighbouring) genre, so classes overlap: the task is learnable but not trivially separable. With
the defaults, a softmax regression on the mean dB spectrum of 3-s segments (STFT 1024 / hop 512,
60 / 40 split by track) scores about 55 % (chance: 10 %; metal and classical are easiest; blues,
rock, pop and jazz are confused most). The same seed gives byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import soundfile as sf

from raysearch.cli import program  # noqa: E402
from raysearch.data import GENRES

DEFAULT_CLIPS_PER_GENRE = 20
DEFAULT_DURATION = 6.0  # seconds; small so a CPU can train on it (GTZAN clips are 30 s)
DEFAULT_SEED = 0
SAMPLE_RATE = 22_050

GENERATOR_NAME = "raysearch.synth"
GENERATOR_VERSION = "raysearch-synth-1"
MANIFEST_NAME = "synthetic.json"
AUDIO_DIR = "genres_original"

STEPS_PER_BAR = 16  # 16th-note grid
BORROW_PROBABILITY = 0.22  # chance, per layer, to take that layer from another genre's style
NEIGHBOUR_SHARE = 0.7  # when borrowing, chance to borrow from a musically close genre

# Step pattern characters -> onset probability; upper case marks an accent.
_PATTERN_PROB = {"X": 1.0, "x": 0.9, "o": 0.45, "-": 0.15, ".": 0.0}

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
MIXOLYDIAN = (0, 2, 4, 5, 7, 9, 10)
DORIAN = (0, 2, 3, 5, 7, 9, 10)
PHRYGIAN = (0, 1, 3, 5, 7, 8, 10)
HARMONIC_MINOR = (0, 2, 3, 5, 7, 8, 11)
BLUES_SCALE = (0, 3, 5, 6, 7, 10)
MAJOR_PENTA = (0, 2, 4, 7, 9)
MINOR_PENTA = (0, 3, 5, 7, 10)

TRIAD = (0, 2, 4)
TRIAD_OCT = (0, 2, 4, 7)
SEVENTH = (0, 2, 4, 6)
NINTH = (0, 2, 4, 6, 8)
POWER = (0, 4, 7)  # root, fifth, octave in a heptatonic scale


# --------------------------------------------------------------------------------------------------
# Style description
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timbre:
    """Additive-synthesis timbre: harmonic profile, envelope, vibrato and overdrive."""

    harmonics: int  # number of partials
    rolloff: float  # partial k has amplitude k ** -rolloff
    attack: float = 0.005  # seconds
    decay: float = 0.5  # time constant of the exponential decay after the attack (s)
    sustain: float = 0.0  # level the decay settles to (0 = plucked, 1 = organ-like)
    release: float = 0.05  # seconds
    vibrato: float = 0.0  # depth as a fraction of the frequency
    drive: float = 0.0  # tanh overdrive gain applied to the whole layer (0 = clean)
    odd_only: bool = False


@dataclass(frozen=True)
class Drums:
    """A drum kit and its one-bar patterns (16 steps each, see ``_PATTERN_PROB``)."""

    kick: str
    snare: str
    hat: str
    kick_freq: float = 55.0  # pitch the kick sweeps down to (Hz)
    kick_decay: float = 0.2  # s
    snare_tone: float = 190.0  # Hz
    snare_decay: float = 0.12  # s
    hat_decay: float = 0.05  # s
    ride: bool = False  # metallic partials on the cymbal channel
    gain: float = 1.0


@dataclass(frozen=True)
class Part:
    """A pitched layer: when it plays (pattern), what it plays (mode) and how it sounds."""

    pattern: str
    timbre: Timbre
    register: tuple[int, int]  # MIDI note range
    mode: str  # chord | arp | root | fifth | octave | walk | melody
    length: float = 0.0  # note length in steps; 0 = until the next onset (legato)
    voicing: tuple[int, ...] = TRIAD  # scale-degree offsets for chord and arp modes
    gain: float = 1.0
    bend: float = 0.0  # probability that a note slides up into its pitch
    strum: float = 0.0  # seconds between successive chord notes


@dataclass(frozen=True)
class Style:
    """Everything that makes a genre: tempo, feel, harmony, layers and texture."""

    tempo: tuple[float, float]  # BPM range
    swing: float  # 0 = straight, 1 = full triplet swing
    humanize: float  # timing jitter (s, standard deviation)
    scales: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]  # (harmony, melody) options
    progressions: tuple[tuple[int, ...], ...]  # chord roots as harmony-scale degrees
    bars_per_chord: int
    drums: Drums | None
    bass: Part | None
    chords: Part | None
    lead: Part | None
    noise: float  # noise level relative to the music's RMS
    noise_color: float  # spectral slope exponent of the noise (0 white, 1 pink, 2 brown)
    swell: float  # depth of slow loudness changes
    compression: float  # master tanh drive
    neighbours: tuple[str, ...]  # genres this one is most easily confused with


STYLES: dict[str, Style] = {
    "blues": Style(
        tempo=(68, 110),
        swing=0.9,
        humanize=0.012,
        scales=((MIXOLYDIAN, BLUES_SCALE), (DORIAN, BLUES_SCALE)),
        progressions=((0, 3, 0, 0, 3, 3, 0, 0, 4, 3, 0, 4), (0, 3, 0, 4)),
        bars_per_chord=1,
        drums=Drums("X.......x.o.....", "....X.......X...", "x.x.x.x.x.x.x.x.", 55, 0.25),
        bass=Part("x...x...x...x...", Timbre(6, 1.6, decay=0.4, sustain=0.3), (36, 52), "walk"),
        chords=Part(
            "x.o.x.o.x.o.x.o.",
            Timbre(10, 1.2, decay=0.3, sustain=0.2, drive=2.0),
            (52, 70),
            "chord",
            length=1.5,
            voicing=SEVENTH,
            gain=0.8,
        ),
        lead=Part(
            "x.o.x.oox.o.-.o.",
            Timbre(12, 1.0, attack=0.01, sustain=0.5, vibrato=0.012, drive=3.0),
            (60, 84),
            "melody",
            bend=0.35,
        ),
        noise=0.06,
        noise_color=1.0,
        swell=0.15,
        compression=1.0,
        neighbours=("jazz", "rock", "country"),
    ),
    "classical": Style(
        tempo=(56, 100),
        swing=0.0,
        humanize=0.02,
        scales=((MAJOR, MAJOR), (HARMONIC_MINOR, HARMONIC_MINOR)),
        progressions=((0, 3, 4, 0), (0, 5, 1, 4), (0, 4, 5, 2, 3, 0, 3, 4)),
        bars_per_chord=1,
        drums=None,
        bass=Part(
            "x.......x.......",
            Timbre(4, 2.5, attack=0.08, decay=2.0, sustain=0.8, release=0.3, vibrato=0.004),
            (36, 50),
            "root",
            gain=0.7,
        ),
        chords=Part(
            "x.x.x.x.x.x.x.x.",
            Timbre(3, 3.0, attack=0.003, decay=0.8, release=0.2),
            (55, 76),
            "arp",
            voicing=(0, 2, 4, 7),
        ),
        lead=Part(
            "x.......x...x...",
            Timbre(5, 2.2, attack=0.1, decay=1.5, sustain=0.85, release=0.25, vibrato=0.006),
            (67, 93),
            "melody",
        ),
        noise=0.02,
        noise_color=1.5,
        swell=0.5,
        compression=0.3,
        neighbours=("jazz", "pop"),
    ),
    "country": Style(
        tempo=(90, 140),
        swing=0.15,
        humanize=0.008,
        scales=((MAJOR, MAJOR_PENTA), (MIXOLYDIAN, MAJOR_PENTA)),
        progressions=((0, 3, 4, 0), (0, 0, 3, 4), (0, 4, 5, 3)),
        bars_per_chord=1,
        drums=Drums(
            "x.......x.......", "....x.......x...", "x-x-x-x-x-x-x-x-", 60, 0.18, hat_decay=0.09
        ),
        bass=Part("x.......x.......", Timbre(5, 1.8, decay=0.3, sustain=0.2), (36, 50), "fifth"),
        chords=Part(
            "....x.......x.-.",
            Timbre(16, 0.9, attack=0.002, decay=0.25, sustain=0.05),
            (52, 72),
            "chord",
            length=3,
            voicing=TRIAD_OCT,
            strum=0.012,
        ),
        lead=Part(
            "x.x.x.x.x.xox.x.",
            Timbre(14, 0.8, attack=0.002, decay=0.2, sustain=0.05, vibrato=0.008),
            (64, 88),
            "melody",
            bend=0.2,
            gain=0.8,
        ),
        noise=0.02,
        noise_color=1.0,
        swell=0.1,
        compression=1.0,
        neighbours=("rock", "blues", "pop"),
    ),
    "disco": Style(
        tempo=(110, 132),
        swing=0.0,
        humanize=0.001,
        scales=((DORIAN, DORIAN), (MINOR, MINOR)),
        progressions=((0, 3, 0, 3), (0, 6, 5, 4), (0, 0, 3, 3)),
        bars_per_chord=1,
        drums=Drums(
            "X...X...X...X...", "....X.......X...", "x.X.x.X.x.X.x.X.", 50, 0.2, hat_decay=0.1
        ),
        bass=Part("x.x.x.x.x.x.x.x.", Timbre(8, 1.3, decay=0.12, sustain=0.3), (36, 52), "octave"),
        chords=Part(
            "..x...x...x...x.",
            Timbre(9, 1.1, decay=0.1, sustain=0.2),
            (60, 79),
            "chord",
            length=1,
            voicing=SEVENTH,
            gain=0.7,
        ),
        lead=Part(
            "x.......x.......",
            Timbre(7, 1.5, attack=0.15, sustain=0.9, release=0.2, vibrato=0.006),
            (72, 91),
            "melody",
            gain=0.6,
        ),
        noise=0.01,
        noise_color=1.0,
        swell=0.05,
        compression=2.0,
        neighbours=("pop", "hiphop", "reggae"),
    ),
    "hiphop": Style(
        tempo=(80, 100),
        swing=0.35,
        humanize=0.004,
        scales=((MINOR, MINOR_PENTA), (DORIAN, MINOR_PENTA)),
        progressions=((0, 5), (0, 3, 5, 4), (0, 0, 6, 5)),
        bars_per_chord=2,
        drums=Drums(
            "X......x..x.....",
            "....X.......X...",
            "x.x.x.x.x.x.x.x.",
            45,
            0.5,
            hat_decay=0.04,
            gain=1.2,
        ),
        bass=Part(
            "x.........x.....",
            Timbre(1, 2.0, decay=0.8, sustain=0.3),
            (28, 40),
            "root",
            length=6,
            gain=1.2,
        ),
        chords=Part(
            "x.......-.......",
            Timbre(3, 2.0, attack=0.02, decay=1.0, sustain=0.5),
            (55, 72),
            "chord",
            length=8,
            voicing=SEVENTH,
            gain=0.6,
        ),
        lead=Part("..o...o...-...o.", Timbre(4, 1.8, decay=0.3), (72, 84), "melody", length=2),
        noise=0.05,
        noise_color=0.5,
        swell=0.05,
        compression=2.0,
        neighbours=("reggae", "pop", "disco"),
    ),
    "jazz": Style(
        tempo=(100, 200),
        swing=0.9,
        humanize=0.015,
        scales=((MAJOR, MAJOR), (DORIAN, DORIAN)),
        progressions=((1, 4, 0, 0), (1, 4, 0, 5), (0, 5, 1, 4)),
        bars_per_chord=1,
        drums=Drums(
            "o...-...o...-...",
            "--o--o--o--o--o-",
            "X...x.x.X...x.x.",
            55,
            0.15,
            snare_decay=0.18,
            hat_decay=0.25,
            ride=True,
            gain=0.6,
        ),
        bass=Part("x...x...x...x...", Timbre(4, 2.0, decay=0.5, sustain=0.2), (33, 52), "walk"),
        chords=Part(
            "..o.-.o...o.-..o",
            Timbre(8, 1.6, decay=0.4, sustain=0.1),
            (55, 76),
            "chord",
            length=2,
            voicing=NINTH,
            gain=0.7,
        ),
        lead=Part(
            "x.x.x.x.x.x.x.x.",
            Timbre(10, 1.1, attack=0.02, sustain=0.7, vibrato=0.012),
            (58, 82),
            "melody",
        ),
        noise=0.03,
        noise_color=1.0,
        swell=0.2,
        compression=0.5,
        neighbours=("blues", "classical"),
    ),
    "metal": Style(
        tempo=(140, 200),
        swing=0.0,
        humanize=0.003,
        scales=((MINOR, MINOR_PENTA), (PHRYGIAN, PHRYGIAN)),
        progressions=((0, 0, 5, 6), (0, 5, 3, 6), (0, 1, 0, 6)),
        bars_per_chord=1,
        drums=Drums(
            "xxxxxxxxxxxxxxxx",
            "....X.......X...",
            "x.x.x.x.x.x.x.x.",
            60,
            0.08,
            hat_decay=0.2,
            ride=True,
            gain=1.1,
        ),
        bass=Part(
            "x.x.x.x.x.x.x.x.",
            Timbre(8, 1.2, decay=0.1, sustain=0.6, drive=4.0),
            (28, 40),
            "root",
            gain=0.7,
        ),
        chords=Part(
            "xxx.xxx.xxx.xxx.",
            Timbre(12, 0.8, decay=0.08, sustain=0.4, drive=12.0),
            (40, 52),
            "chord",
            length=0.9,
            voicing=POWER,
            gain=1.2,
        ),
        lead=Part(
            "x.x.x.x.o.o.o.o.",
            Timbre(10, 1.0, attack=0.01, sustain=0.8, vibrato=0.015, drive=10.0),
            (64, 88),
            "melody",
            gain=0.7,
        ),
        noise=0.08,
        noise_color=0.0,
        swell=0.05,
        compression=3.0,
        neighbours=("rock",),
    ),
    "pop": Style(
        tempo=(95, 125),
        swing=0.0,
        humanize=0.002,
        scales=((MAJOR, MAJOR), (MAJOR, MAJOR_PENTA)),
        progressions=((0, 4, 5, 3), (5, 3, 0, 4), (0, 5, 3, 4)),
        bars_per_chord=1,
        drums=Drums("X.....x.x.......", "....X.......X...", "x.x.x.x.x.x.x.x.", 50, 0.25),
        bass=Part("x..x..x.x..x..x.", Timbre(3, 1.5, decay=0.3, sustain=0.5), (36, 52), "root"),
        chords=Part(
            "x.......x.......",
            Timbre(14, 1.0, attack=0.03, sustain=0.7, release=0.1),
            (57, 76),
            "chord",
            length=8,
            voicing=TRIAD_OCT,
            gain=0.6,
        ),
        lead=Part(
            "x.x...x.x.x...x.",
            Timbre(6, 1.8, attack=0.03, sustain=0.8, vibrato=0.01),
            (64, 81),
            "melody",
        ),
        noise=0.01,
        noise_color=1.0,
        swell=0.05,
        compression=2.5,
        neighbours=("disco", "rock", "hiphop", "country"),
    ),
    "reggae": Style(
        tempo=(65, 90),
        swing=0.25,
        humanize=0.006,
        scales=((MAJOR, MAJOR_PENTA), (MINOR, MINOR_PENTA)),
        progressions=((0, 3), (0, 4, 3, 4), (0, 6)),
        bars_per_chord=1,
        drums=Drums(
            "........X.......",
            "........X.......",
            "x.x.x.x.x.x.x.x.",
            55,
            0.3,
            snare_tone=420,
            snare_decay=0.05,
            gain=0.8,
        ),
        bass=Part(
            "x..x....x.x...o.",
            Timbre(2, 2.5, decay=0.6, sustain=0.6),
            (28, 45),
            "melody",
            length=2,
            gain=1.3,
        ),
        chords=Part(
            "..x...x...x...x.",
            Timbre(12, 1.0, attack=0.002, decay=0.05),
            (60, 76),
            "chord",
            length=0.6,
            voicing=TRIAD,
        ),
        lead=Part(
            "x.......o...o...",
            Timbre(5, 1.5, attack=0.01, sustain=0.8),
            (67, 84),
            "melody",
            gain=0.5,
        ),
        noise=0.02,
        noise_color=1.0,
        swell=0.05,
        compression=1.0,
        neighbours=("hiphop", "pop"),
    ),
    "rock": Style(
        tempo=(100, 150),
        swing=0.0,
        humanize=0.006,
        scales=((MIXOLYDIAN, MINOR_PENTA), (MINOR, MINOR_PENTA), (MAJOR, MAJOR_PENTA)),
        progressions=((0, 6, 3, 0), (0, 3, 4, 3), (0, 5, 6, 0)),
        bars_per_chord=1,
        drums=Drums(
            "X.......x.x.....", "....X.......X...", "x.x.x.x.x.x.x.x.", 58, 0.15, hat_decay=0.08
        ),
        bass=Part(
            "x.x.x.x.x.x.x.x.",
            Timbre(7, 1.3, decay=0.2, sustain=0.5, drive=1.5),
            (33, 48),
            "root",
            gain=0.8,
        ),
        chords=Part(
            "x.x.x.x.x.x.x.x.",
            Timbre(12, 0.9, decay=0.3, sustain=0.5, drive=5.0),
            (45, 60),
            "chord",
            length=2,
            voicing=POWER,
        ),
        lead=Part(
            "x...x.x.x...x.o.",
            Timbre(10, 1.0, attack=0.01, sustain=0.7, vibrato=0.01, drive=6.0),
            (62, 86),
            "melody",
            bend=0.2,
            gain=0.7,
        ),
        noise=0.05,
        noise_color=0.5,
        swell=0.05,
        compression=1.5,
        neighbours=("metal", "blues", "country", "pop"),
    ),
}


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
    probs = np.array([_PATTERN_PROB[c] for c in pattern])
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


# --------------------------------------------------------------------------------------------------
# Dataset on disk
# --------------------------------------------------------------------------------------------------


def clip_path(root: str | Path, genre: str, index: int) -> Path:
    """``root/genres_original/<genre>/<genre>.NNNNN.wav`` (GTZAN's naming)."""
    return Path(root) / AUDIO_DIR / genre / f"{genre}.{index:05d}.wav"


def manifest(clips_per_genre: int, duration: float, seed: int) -> dict[str, object]:
    """The parameters recorded in ``synthetic.json`` (without the completion flag)."""
    return {
        "generator": GENERATOR_NAME,
        "version": GENERATOR_VERSION,
        "synthetic": True,
        "seed": int(seed),
        "clips_per_genre": int(clips_per_genre),
        "duration": float(duration),
        "sample_rate": SAMPLE_RATE,
        "subtype": "PCM_16",
        "genres": list(GENRES),
    }


def read_manifest(root: str | Path) -> dict[str, object] | None:
    """``root/synthetic.json`` if it exists and was written by this generator, else None."""
    path = Path(root) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == GENERATOR_NAME else None


def _same_parameters(found: dict[str, object], wanted: dict[str, object]) -> bool:
    return all(found.get(key) == value for key, value in wanted.items())


def matches(
    root: str | Path,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    duration: float = DEFAULT_DURATION,
    seed: int = DEFAULT_SEED,
) -> bool:
    """Whether ``root`` holds a complete synthetic set made with exactly these parameters."""
    found = read_manifest(root)
    return (
        found is not None
        and found.get("complete") is True
        and _same_parameters(found, manifest(clips_per_genre, duration, seed))
        and all(clip_path(root, g, i).exists() for g in GENRES for i in range(clips_per_genre))
    )


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_manifest(root: Path, params: dict[str, object], complete: bool) -> None:
    _atomic_write_text(
        root / MANIFEST_NAME, json.dumps({**params, "complete": complete}, indent=2) + "\n"
    )


def _write_clip(job: tuple[Path, str, int, int, float]) -> Path:
    """Synthesize one clip and write it atomically (temp name in the same folder, then replace)."""
    root, genre, index, seed, duration = job
    path = clip_path(root, genre, index)
    audio = synthesize_clip(genre, index, seed, duration)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    sf.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    os.replace(tmp, path)
    return path


def _remove_stale(root: Path, clips_per_genre: int) -> None:
    """Delete leftovers of an earlier synthetic set: clips beyond the count and temp files."""
    for genre in GENRES:
        folder = root / AUDIO_DIR / genre
        if not folder.is_dir():
            continue
        for path in folder.glob(f"{genre}.*.wav"):
            number = path.name[len(genre) + 1 : -len(".wav")]
            if number.isdigit() and int(number) >= clips_per_genre:
                path.unlink()
        for path in folder.glob(".*.tmp"):
            path.unlink()


def _run_jobs(jobs: list[tuple[Path, str, int, int, float]], workers: int) -> Iterator[Path]:
    if workers <= 1 or len(jobs) <= 1:
        yield from map(_write_clip, jobs)
        return
    chunksize = max(1, len(jobs) // (workers * 8))
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_write_clip, jobs, chunksize=chunksize)


def _report(done: Iterable[Path], total: int, started: float) -> None:
    """Print progress to stderr every 10 %."""
    next_mark = 1
    for count, _ in enumerate(done, start=1):
        if count * 10 >= next_mark * total:
            next_mark = count * 10 // total + 1
            elapsed = time.perf_counter() - started
            print(
                f"synth: {count}/{total} clips ({100 * count // total}%), {elapsed:.1f} s",
                file=sys.stderr,
            )


def generate(
    out: str | Path,
    clips_per_genre: int = DEFAULT_CLIPS_PER_GENRE,
    duration: float = DEFAULT_DURATION,
    seed: int = DEFAULT_SEED,
    workers: int = 1,
    progress: bool = False,
) -> Path:
    """Write the synthetic set under ``out`` and return ``out`` (the dataset root).

    If ``out/synthetic.json`` already records the same parameters and every file exists, nothing is
    done; with the same parameters but missing files, only those are written. A folder holding WAV
    files but no ``synthetic.json`` from this generator (e.g. real GTZAN) is never overwritten.
    """
    if clips_per_genre < 1:
        raise ValueError("clips_per_genre must be at least 1")
    if duration <= 0:
        raise ValueError("duration must be positive")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    root = Path(out)
    params = manifest(clips_per_genre, duration, seed)
    found = read_manifest(root)
    jobs = [
        (root, g, i, int(seed), float(duration)) for g in GENRES for i in range(clips_per_genre)
    ]
    if found is not None and _same_parameters(found, params):
        jobs = [job for job in jobs if not clip_path(root, job[1], job[2]).exists()]
        if not jobs and found.get("complete") is True:
            return root
    elif found is None and any((root / AUDIO_DIR).glob("*/*.wav")):
        raise FileExistsError(
            f"{root / AUDIO_DIR} holds audio that is not a synthetic set; refusing to overwrite it"
        )
    root.mkdir(parents=True, exist_ok=True)
    _write_manifest(root, params, complete=False)
    _remove_stale(root, clips_per_genre)
    for genre in GENRES:
        (root / AUDIO_DIR / genre).mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    done = _run_jobs(jobs, workers)
    if progress:
        _report(done, len(jobs), started)
    else:
        for _ in done:
            pass
    _write_manifest(root, params, complete=True)
    return root


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=program("synth"),
        description=(
            "Generate the synthetic mini-GTZAN: real 16-bit mono WAV files at 22,050 Hz in GTZAN's "
            "layout (DIR/genres_original/<genre>/<genre>.NNNNN.wav, ten genres) plus "
            "DIR/synthetic.json. It is the project's embedded default dataset, for developing and "
            "testing the pipeline and the hyperparameter search where GTZAN itself is unavailable; "
            "each genre has its own tempo, rhythm, timbre, harmony and noise signature with random "
            "per-clip variation, so the classes are learnable but overlap. Re-running with the "
            "same parameters does nothing."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="dataset root to write (created if missing; an existing matching set is kept)",
    )
    parser.add_argument(
        "--clips-per-genre",
        type=int,
        metavar="N",
        default=DEFAULT_CLIPS_PER_GENRE,
        help="clips per genre (GTZAN has 100)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        metavar="SECONDS",
        default=DEFAULT_DURATION,
        help="clip length in seconds (GTZAN's clips are 30 s; short clips keep CPU training fast)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        metavar="S",
        default=DEFAULT_SEED,
        help="random seed; the same seed gives byte-identical files",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="K",
        default=1,
        help="worker processes (clips are rendered in parallel when K > 1)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if matches(args.out, args.clips_per_genre, args.duration, args.seed):
        print(f"{args.out} already holds this synthetic set; nothing to do", file=sys.stderr)
        return 0
    started = time.perf_counter()
    try:
        root = generate(
            args.out,
            clips_per_genre=args.clips_per_genre,
            duration=args.duration,
            seed=args.seed,
            workers=args.workers,
            progress=True,
        )
    except (ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(
        f"synthetic GTZAN at {root} ({10 * args.clips_per_genre} clips, {elapsed:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
