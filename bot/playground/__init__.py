"""The playground: try PeerLearn without a Slack workspace (`python app.py playground`).

PeerLearn runs in-process against the Slack emulator in bot/playground/emulator (the tests use it too), and
a small Slack-like page on 127.0.0.1 lets one person play a whole team: ask, answer in threads, react, click,
open the App Home.
"""
