"""Sound beside the video: chunks stamped on the capture clock, carried losslessly to every output.

- `chunk`: what moves (samples plus the capture time of the first one).
- `clock`: maps a source's media timestamps onto the capture clock the video is stamped with.
- `feed`: the bounded but lossless queue each audio-carrying output reads from.
- `inputs`: where chunks come from (the source's own audio, or a capture device).
- `encode`: one output's audio track: resampled once, placed on the video's timeline.
"""
