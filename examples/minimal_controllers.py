"""The smallest charger and truck decisions that complete a -20 session, for your own controllers to start from.

They live in `stack.session.reference` (the conformance runner plays them as its peers); this module keeps the
example's name:

    from examples.minimal_controllers import MinimalEv, MinimalEvse
    from stack.transport.link import VirtualLink
    from stack.session.evcc import EvccSession
    from stack.session.secc import SeccSession
    transcript = VirtualLink(EvccSession(MinimalEv()), SeccSession(MinimalEvse())).run()
"""

from stack.session.reference import MCS_CHARGER, MCS_TRUCK, WELDING_SAFE_VOLTAGE, MinimalEv, MinimalEvse

__all__ = ["MCS_CHARGER", "MCS_TRUCK", "WELDING_SAFE_VOLTAGE", "MinimalEv", "MinimalEvse"]
