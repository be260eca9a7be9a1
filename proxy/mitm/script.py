"""The entry point for people who already run mitmproxy:

    mitmdump -s proxy/mitm/script.py --set aiwarden_policy=policies --set connection_strategy=lazy

The only module that builds addons when it is imported, because that is how mitmproxy finds a
script's addons. (Imports are absolute because mitmdump loads this file outside its package.)
"""

from proxy.mitm.addon import AIWarden
from proxy.mitm.deadlines import Deadlines
from proxy.mitm.discovery import Discovery
from proxy.serve.admin import AdminServer

# the admin listener comes first so the addon can protect it; discovery after the addon,
# whose decisions it counts
addons = [AdminServer(), AIWarden(), Deadlines(), Discovery()]
