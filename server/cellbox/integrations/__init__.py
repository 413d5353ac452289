"""Drop-in code executors for agent frameworks, backed by cellbox's sandbox
(each needs its framework: extras cellbox[ag2], cellbox[autogen])."""
