"""The genres of the synthetic mini-GTZAN as data: scales, voicings, and one :class:`Style` per
genre (tempo, feel, harmony, drum patterns, pitched parts, texture). Rendering them into audio
is :mod:`raysearch.data.synth.render`'s job; this file holds only the table."""

from __future__ import annotations

from dataclasses import dataclass

STEPS_PER_BAR = 16  # 16th-note grid
BORROW_PROBABILITY = 0.22  # chance, per layer, to take that layer from another genre's style
NEIGHBOUR_SHARE = 0.7  # when borrowing, chance to borrow from a musically close genre

# Step pattern characters -> onset probability; upper case marks an accent.
PATTERN_PROB = {"X": 1.0, "x": 0.9, "o": 0.45, "-": 0.15, ".": 0.0}

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
    """A drum kit and its one-bar patterns (16 steps each, see ``PATTERN_PROB``)."""

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
