// Types of the addon's model entry points (native/addon/model_binding.cpp).
export interface ModelBindings {}
