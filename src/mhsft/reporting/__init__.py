"""`mhsft report`: the experiment report (Markdown and self-contained HTML) written from a recorded run."""
