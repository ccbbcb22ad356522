"""Speech quality on real media, measured by code in the repo; one JSON line at the end.

Every part measures the default against the previous default in the same run ("previous":
language per span without switch evidence and faster-whisper's unseeded temperature fallback;
speakers per 10-second pipeline chunk instead of per 1.5-second window; diarised segments cut
at every word token).

- Word error rate (after `archive_pipeline.quality.normalise_text`) of each packaged Whisper
  model on ../shared/media/speech (jfk and the three LibriVox clips), per file and overall.
- Diarisation error rate (collar 0.25 s each side, speaker count automatic) of the default
  backend (pyannote.audio pipeline, packaged segmentation-3.0 + CAM++, spectral clustering)
  and of the previous default (resemblyzer GE2E windows + agglomerative clustering), in the
  same run, on generated files (reference exact by construction): an English and a German
  two-voice dialogue, a four-voice meeting; on ../shared/media/speakers/ami-tst00.wav (4 real
  speakers with overlap, first 30 s); and the speakers found on single-voice files (JFK, the
  LibriVox clips, the demo's German bulletin: must be 1). Per backend: model load seconds and
  real-time factor (processing seconds / audio seconds, median over the files).
- Language per segment on generated code-switching files (espeak-ng English and German voices):
  the demo's Berlin interview (German host, English guest) and a reading that switches from
  English to German half-way; the share of segments whose language is the language spoken at
  their middle, per file and per language, and transcription seconds, for the per-span
  detection (the default) and the previous default (one language per file) in the same run.
- False language switches: segments stored in a language other than English on English
  multi-speaker audio (both shared AMI clips, the generated meeting, 4-voice panel and
  dialogue); target 0.
- Fragments on a script without spaces: a generated Thai interview (espeak-ng Thai, which
  Whisper base recognises poorly: the measure is the cutting, not the words), transcribed in
  Thai and diarised; diarised pieces, one-character pieces, pieces starting with a combining
  mark, previous cut vs default.
- A configured pyannote pipeline (hub weights) is measured too with --pyannote (or
  ARCHIVE_PYANNOTE_PIPELINE).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# English then German, read by one voice style each (a lecture switching language half-way)
EN_THEN_DE = [
    (("en", 50), "Good evening. Tonight we look back at the radio programmes of the nineteen "
     "eighties, and at the people who made them in this city."),
    (("en", 50), "The studio was small, the microphones were old, and the news was read live "
     "every hour, day and night."),
    (("de", 50), "Die Grenze wurde geöffnet, und tausende Menschen gingen zum ersten Mal über die "
     "Brücke nach Westberlin."),
    (("de", 50), "Am nächsten Morgen waren die Straßen voller Menschen, und überall hörte man "
     "Musik und Gespräche."),
]  # fmt: skip


QUICK = False  # --quick: each part on its first case (a smoke run, not a measure)


def _few(cases, n: int = 1) -> list:
    """All cases, or the first n in a --quick run."""
    return list(cases)[:n] if QUICK else list(cases)


PREVIOUS_TEMPERATURES = "0,0.2,0.4,0.6,0.8,1.0"  # faster-whisper's fallback, unseeded before


def previous(settings):
    """The previous transcription default: no switch evidence, the full temperature fallback."""
    from dataclasses import replace

    return replace(settings, switch_evidence=False, temperatures=PREVIOUS_TEMPERATURES)


def false_switches(args, tmp: Path, item) -> dict:
    """Segments stored in another language than English on English multi-speaker audio."""
    import shutil

    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.transcription import TranscribeStage
    from archive_pipeline_tests.speech_fixtures import dialogue, meeting, panel

    for name in ("ami-tst00", "ami-trn07"):
        shutil.copyfile(args.shared_media / "speakers" / f"{name}.wav", tmp / f"{name}.wav")
    dialogue(tmp / "en_dialogue.wav")
    if not QUICK:
        meeting(tmp / "en_meeting.wav")
        panel(tmp / "en_panel4.wav", 4)
    names = _few(["en_dialogue", "ami-tst00", "ami-trn07", "en_meeting", "en_panel4"])
    stage = TranscribeStage(LocalStore(str(tmp)), model_cache=str(tmp / "models"))
    stage.setup()
    default = stage.settings
    out: dict = {}
    for mode, settings in _few((("default", default), ("previous", previous(default)))):
        stage.settings = settings
        wrong, total, figures = 0, 0, {}
        for name in names:
            segments = stage.process(item(f"{name}.wav")).segments
            others = [s for s in segments if s["language"] != "en"]
            wrong += len(others)
            total += len(segments)
            figures[name] = f"{len(others)}/{len(segments)}"
            shown = [f"{s['language']}: {s['text'][:40]}" for s in others]
            print(f"false switches {mode:<9} {name:<12} {figures[name]}  {shown}")
        out[mode] = {"false_switches": wrong, "segments": total, "per_file": figures}
    return out


def fragments(tmp: Path, item) -> dict:
    """Diarised pieces of a no-space script (Thai), cut at every word token vs whole words."""
    import unicodedata

    from archive_pipeline.core import diarisation as dz
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.diarisation import DiarizeStage
    from archive_pipeline.stages.transcription import TranscribeStage
    from archive_pipeline_tests.speech_fixtures import thai_interview

    thai_interview(tmp / "thai_interview.wav", turns=2 if QUICK else 4)  # quick: a turn each
    thai = CatalogItem(
        uri="thai_interview.wav",
        store_key="thai_interview.wav",
        media_id="thai",
        sha256="thai",
        duration_s=None,
        language="th",
    )
    stage = TranscribeStage(LocalStore(str(tmp)), model_cache=str(tmp / "models"))
    stage.setup()
    segments = stage.process(thai).segments
    diarizer = DiarizeStage(LocalStore(str(tmp)))
    diarizer.setup()
    turns = [dz.Turn(t["start"], t["end"], t["speaker"]) for t in diarizer.process(thai).turns]
    out: dict = {"transcript_segments": len(segments)}
    for mode, options in (
        ("previous", {"whole_words": False, "min_piece_s": 0.0}),
        ("default", {}),
    ):
        pieces = [p for s in segments for p in dz.split_segment(s, turns, **options)]
        texts = [p["text"] for p in pieces]
        out[mode] = {
            "pieces": len(pieces),
            "one_character": sum(1 for t in texts if len(t) <= 1),
            "combining_first": sum(
                1 for t in texts if t and unicodedata.category(t[0]).startswith("M")
            ),
            "shorter_than_0_5_s": sum(1 for p in pieces if p["end_s"] - p["start_s"] < 0.5),
        }
        print(f"fragments {mode:<9} thai_interview {json.dumps(out[mode])}")
    return out


def language_accuracy(tmp: Path, item) -> dict:
    """Per-segment language accuracy on generated code-switching files: the default, the
    previous default and one language per file, in the same run."""
    import time
    from dataclasses import replace

    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.demo.build import bilingual_interview, spoken_parts
    from archive_pipeline.stages.transcription import TranscribeStage

    parts = EN_THEN_DE[1:3] if QUICK else EN_THEN_DE  # quick: one sentence of each language
    files = {"en_then_de": spoken_parts(parts, tmp / "en_then_de.wav", tmp)}
    if not QUICK:
        files["berlin_interview"] = bilingual_interview(tmp / "berlin_interview.wav", tmp)
    stage = TranscribeStage(LocalStore(str(tmp)), model_cache=str(tmp / "models"))
    stage.setup()
    default = stage.settings
    out: dict = {}
    modes = (
        ("per_span", default),
        ("previous", previous(default)),
        ("per_file", replace(default, language_per_span=False)),
    )
    for mode, settings in _few(modes):
        stage.settings = settings
        figures: dict = {}
        for name, turns in _few(files.items()):
            start = time.perf_counter()
            segments = stage.process(item(f"{name}.wav")).segments
            seconds = time.perf_counter() - start
            right: dict[str, list[bool]] = {}
            for seg in segments:
                middle = (seg["start_s"] + seg["end_s"]) / 2
                spoken = min(
                    turns, key=lambda t: 0 if t[0] <= middle <= t[1] else abs(t[0] - middle)
                )
                right.setdefault(spoken[2], []).append(seg["language"] == spoken[2])
            every = [ok for oks in right.values() for ok in oks]
            figures[name] = {
                "segments": len(segments),
                "accuracy": round(sum(every) / len(every), 3) if every else None,
                **{
                    f"accuracy_{lang}": round(sum(oks) / len(oks), 3) for lang, oks in right.items()
                },
                "transcribe_s": round(seconds, 2),
            }
            print(f"language {mode:<9} {name:<17} {json.dumps(figures[name])}")
        out[mode] = figures
    return out


def diarisation(args, tmp: Path, item) -> dict:
    """DER and speakers found per backend and file, load time and real-time factor."""
    import shutil

    from archive_pipeline.demo.build import german_bulletin
    from archive_pipeline.quality import read_rttm
    from archive_pipeline_tests.speech_fixtures import dialogue, german_dialogue, meeting, panel

    media = args.shared_media
    if QUICK:  # one generated dialogue (exact reference) and one single voice
        shutil.copyfile(media / "speech/jfk.flac", tmp / "jfk.flac")
        files = {"dialogue_en": (dialogue(tmp / "dialogue_en.wav"), None), "jfk": (None, None)}
        return _diarisation_runs(args, tmp, item, files)
    files: dict[str, tuple[list | None, tuple | None]] = {
        "dialogue_en": (dialogue(tmp / "dialogue_en.wav"), None),
        "dialogue_de": (german_dialogue(tmp / "dialogue_de.wav"), None),
        "meeting_4": (meeting(tmp / "meeting_4.wav"), None),
        "three_once": (panel(tmp / "three_once.wav", 3, rounds=1), None),
        **{f"panel_{n}": (panel(tmp / f"panel_{n}.wav", n), None) for n in (3, 4, 5, 6)},
        "ami": (read_rttm(media / "speakers/ami-tst00.rttm"), (0.0, 30.0)),
        "ami_trn07": (read_rttm(media / "speakers/ami-trn07.rttm"), (0.0, 30.0)),
    }
    shutil.copyfile(media / "speakers/ami-tst00.wav", tmp / "ami.wav")
    shutil.copyfile(media / "speakers/ami-trn07.wav", tmp / "ami_trn07.wav")
    for name in ("jfk.flac", "librivox-0870.wav", "librivox-0880.wav", "librivox-0890.wav"):
        shutil.copyfile(media / "speech" / name, tmp / name)
        files[name.split(".")[0]] = (None, None)
    german_bulletin(tmp / "bulletin_de.flac", tmp)
    files["bulletin_de"] = (None, None)
    return _diarisation_runs(args, tmp, item, files)


def _diarisation_runs(args, tmp: Path, item, files: dict) -> dict:
    """DER and speakers found per backend over `files` ({name: (reference, uem)})."""
    import statistics
    import time

    from archive_pipeline.core.audio import SAMPLE_RATE, decode_audio
    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality import diarization_error_rate
    from archive_pipeline.stages.diarisation import DiarizationSettings, DiarizeStage

    paths = {name: next(tmp.glob(f"{name}.*")) for name in files}
    backends = [
        ("default", DiarizationSettings()),
        ("previous", DiarizationSettings(windows=False)),
        ("resemblyzer", DiarizationSettings(backend="resemblyzer")),
    ]
    if QUICK:
        del backends[1]  # the default and the baseline of the ratio
    if args.pyannote:
        backends.append(("configured", DiarizationSettings(pyannote_pipeline=args.pyannote)))
    out: dict = {}
    for backend, settings in backends:
        stage = DiarizeStage(LocalStore(str(tmp)), settings)
        started = time.perf_counter()
        stage.setup()
        figures: dict = {"model_id": stage.model_id, "load_s": time.perf_counter() - started}
        rtf = []
        single = []
        for name, (reference, uem) in files.items():
            seconds = len(decode_audio(paths[name])) / SAMPLE_RATE
            started = time.perf_counter()
            turns = stage.process(item(paths[name].name)).turns
            rtf.append((time.perf_counter() - started) / seconds)
            found = len({t["speaker"] for t in turns})
            if reference is None:
                single.append(found)
                print(f"speakers {backend:<12} {name:<20} {found} (one voice)")
                continue
            hyp = [(t["start"], t["end"], t["speaker"]) for t in turns]
            der = diarization_error_rate(reference, hyp, collar_s=0.25, uem=uem)
            voices = len({who for _, _, who in reference})
            print(f"DER {backend:<12} {name:<20} {der:6.3f}  ({found} of {voices} speakers)")
            figures[f"der_{name}"] = round(der, 4)
            figures[f"speakers_{name}"] = f"{found}/{voices}"
        counted = [k for k in figures if k.startswith("speakers_")]
        figures["speaker_counts_right"] = (
            f"{sum(1 for k in counted if figures[k].split('/')[0] == figures[k].split('/')[1])}"
            f"/{len(counted)}"
        )
        figures["single_voice_files_with_one_speaker"] = f"{single.count(1)}/{len(single)}"
        figures["rtf_median"] = round(statistics.median(rtf), 4)
        figures["load_s"] = round(figures["load_s"], 1)
        print(f"{backend}: load {figures['load_s']} s, real-time factor {figures['rtf_median']}")
        out[backend] = figures
    out["rtf_ratio_default_vs_resemblyzer"] = round(
        out["default"]["rtf_median"] / out["resemblyzer"]["rtf_median"], 2
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shared-media", type=Path, default=REPO.parent / "shared" / "media")
    parser.add_argument("--models", nargs="+", default=["base", "tiny.en"])
    parser.add_argument(
        "--pyannote",
        default=os.environ.get("ARCHIVE_PYANNOTE_PIPELINE"),
        help="a real pyannote pipeline directory or hub id to evaluate too",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["wer", "language", "switches", "diarisation", "fragments"],
        default=["wer", "language", "switches", "diarisation", "fragments"],
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: tiny.en, every part on its first file (no figures to compare)",
    )
    args = parser.parse_args()
    global QUICK
    QUICK = args.quick
    if QUICK:
        args.models = ["tiny.en"]

    import jiwer

    from archive_pipeline.core.local_store import LocalStore
    from archive_pipeline.quality import normalise_text, speech_references
    from archive_pipeline.stages.base import CatalogItem
    from archive_pipeline.stages.transcription import TranscribeStage, WhisperSettings

    speech = args.shared_media / "speech"
    refs = speech_references(speech)
    result: dict = {"benchmark": "speech_quality"}

    def item(name: str) -> CatalogItem:
        return CatalogItem(uri=name, store_key=name, media_id=name, sha256=name, duration_s=None)

    with tempfile.TemporaryDirectory(prefix="speech-quality-") as tmp:
        runs = [(m, WhisperSettings(model=m)) for m in args.models]
        if not QUICK:
            runs.insert(1, ("base_previous", previous(WhisperSettings(model="base"))))
        for model, settings in runs if "wer" in args.parts else ():
            stage = TranscribeStage(
                LocalStore(str(speech)), settings, model_cache=str(Path(tmp) / "models")
            )
            stage.setup()
            hyps, per_file = {}, {}
            for name, reference in _few(sorted(refs.items())):
                hyps[name] = " ".join(s["text"] for s in stage.process(item(name)).segments)
                per_file[name] = jiwer.wer(normalise_text(reference), normalise_text(hyps[name]))
                print(f"WER {model:<8} {name:<20} {per_file[name]:6.3f}  {hyps[name]}")
            overall = jiwer.wer(
                [normalise_text(refs[n]) for n in sorted(hyps)],
                [normalise_text(hyps[n]) for n in sorted(hyps)],
            )
            print(f"WER {model:<8} {'all (word-weighted)':<20} {overall:6.3f}")
            result[f"wer_{model}"] = round(overall, 4)
            result[f"wer_{model}_per_file"] = {k: round(v, 4) for k, v in per_file.items()}

        tmp_dir = Path(tmp)
        if "language" in args.parts:
            result["language"] = language_accuracy(tmp_dir, item)
        if "switches" in args.parts:
            result["false_switches"] = false_switches(args, tmp_dir, item)
        if "fragments" in args.parts:
            result["fragments"] = fragments(tmp_dir, item)
        if "diarisation" in args.parts:
            result["diarisation"] = diarisation(args, tmp_dir, item)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
