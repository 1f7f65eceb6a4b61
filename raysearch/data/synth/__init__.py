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

from raysearch.data.synth.render import SAMPLE_RATE, synthesize_clip
from raysearch.data.synth.styles import STYLES
from raysearch.data.synth.write import (
    AUDIO_DIR,
    DEFAULT_CLIPS_PER_GENRE,
    DEFAULT_DURATION,
    DEFAULT_SEED,
    MANIFEST_NAME,
    clip_path,
    generate,
    manifest,
    matches,
    read_manifest,
)

__all__ = [
    "AUDIO_DIR",
    "DEFAULT_CLIPS_PER_GENRE",
    "DEFAULT_DURATION",
    "DEFAULT_SEED",
    "MANIFEST_NAME",
    "SAMPLE_RATE",
    "STYLES",
    "clip_path",
    "generate",
    "manifest",
    "matches",
    "read_manifest",
    "synthesize_clip",
]
