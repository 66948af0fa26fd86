from core.nn_base.module import CoreModule


class Backbone(CoreModule):
    pass
